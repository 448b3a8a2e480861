"""``python -m hub_testkit.crashserve [--kill-at-write N] [--kill-in-recovery N] serve ...``: the real
``reasoner-hub`` command with its storage wrapped in a KillSwitch, so the crash tests can SIGKILL the
server at a chosen storage write. Production code has no such switch; only this entry point installs it.
"""

from __future__ import annotations

import argparse
import sys

from reasoner_hub import cli, server
from reasoner_hub.storage import Storage

from hub_testkit.faults import KillSwitch


def install(at: int | None, in_recovery: int | None) -> None:
    """Wrap every storage the server opens; arm the switch once start-up recovery is done."""
    open_storage, recover = server.open_storage, server.recover

    def wrapped_open(spec: str, s3_endpoint: str | None = None) -> Storage:
        return KillSwitch(open_storage(spec, s3_endpoint), at, in_recovery)

    def wrapped_recover(store):
        result = recover(store)
        if isinstance(store.storage, KillSwitch):
            store.storage.arm()
        return result

    server.open_storage, server.recover = wrapped_open, wrapped_recover


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="crashserve")
    parser.add_argument("--kill-at-write", type=int)
    parser.add_argument("--kill-in-recovery", type=int)
    ours, rest = parser.parse_known_args(argv)
    install(ours.kill_at_write, ours.kill_in_recovery)
    return cli.main(rest)


if __name__ == "__main__":
    sys.exit(main())
