"""``serve``: run the hub from the command line (``reasoner-hub serve``; the trainer's ``reasoner hub serve``
and ``python -m reasoner_hub`` are the same command); ``gc``: delete the Xet data no repo needs any more
(``reasoner-hub gc``; refused while a hub serves the storage); ``mirror refresh``: check a mirrored repo's
``main`` against its upstream now.

S3 credentials come from the usual AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY variables; the token
of an upstream hub, when it needs one, from LOCALHUB_UPSTREAM_TOKEN (kept out of the process list).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING

from reasoner_hub.errors import HubError, UserError
from reasoner_hub.auth import TokenBook, load_token_file, parse_token_arg
from reasoner_hub.backends import open_storage
from reasoner_hub.xet.gc import DEFAULT_GRACE_MINUTES, check_grace, collect

if TYPE_CHECKING:
    from reasoner_hub.server import HubServer

UPSTREAM_TOKEN_ENV = "LOCALHUB_UPSTREAM_TOKEN"


class _Parser(argparse.ArgumentParser):
    """A bad command line is one line naming the problem and where to read more (exit 2), not a usage dump."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="reasoner-hub", description="A Hugging-Face-compatible hub over a folder or S3 bucket.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve repos stored in a folder or an S3 bucket")
    serve.add_argument("--storage", required=True, help="a folder, or s3://BUCKET[/prefix]")
    serve.add_argument("--s3-endpoint", help="S3 endpoint URL (e.g. http://127.0.0.1:8333 for SeaweedFS)")
    serve.add_argument("--upstream", help="HF-compatible endpoint to mirror repos from on a miss")
    serve.add_argument("--upstream-ttl-minutes", type=float, metavar="MINUTES",
                       help="check a mirrored repo's main against the upstream again once this old "
                            "(default: never; `reasoner-hub mirror refresh` checks one now)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000; 0 = any free)")
    serve.add_argument("--token-file", help="YAML/JSON list of {name, token, role: read|write}")
    serve.add_argument("--token", action="append", default=[], metavar="NAME=TOKEN:ROLE", help="a token (repeatable)")
    serve.add_argument("--request-log", help="append one JSON line per request to this file")
    serve.add_argument("--no-xet", action="store_true",
                       help="serve the LFS protocol only (clients must set HF_HUB_DISABLE_XET=1 to upload)")
    gc = commands.add_parser("gc", help="delete Xet data no repo needs any more (refused while a hub serves the storage)")
    gc.add_argument("--storage", required=True, help="a folder, or s3://BUCKET[/prefix]")
    gc.add_argument("--s3-endpoint", help="S3 endpoint URL (e.g. http://127.0.0.1:8333 for SeaweedFS)")
    gc.add_argument("--grace-minutes", type=float, default=DEFAULT_GRACE_MINUTES,
                    help="keep unreferenced data younger than this (default 30240, three weeks: what hf_xet clients "
                         "remember uploading, and uploads whose commit is still to come)")
    gc.add_argument("--dry-run", action="store_true",
                    help="print what would be deleted; delete nothing (allowed while hubs serve the storage)")
    mirror = commands.add_parser("mirror", help="mirrored repos (--upstream)").add_subparsers(dest="action",
                                                                                             required=True)
    refresh = mirror.add_parser("refresh", help="check a mirrored repo's main against the upstream now")
    refresh.add_argument("repo_id", metavar="ORG/NAME")
    refresh.add_argument("--repo-type", default="model", choices=["model", "dataset", "space"])
    refresh.add_argument("--storage", required=True, help="the hub's folder, or s3://BUCKET[/prefix]")
    refresh.add_argument("--s3-endpoint", help="S3 endpoint URL")
    refresh.add_argument("--upstream", required=True, help="the HF-compatible endpoint the repo is mirrored from")
    return parser


def _minutes(value: float | None, flag: str) -> float | None:
    """Seconds from a minutes flag; UserError unless it is a finite number, 0 or more."""
    if value is None:
        return None
    if not math.isfinite(value) or value < 0:
        raise UserError(f"{flag} {value:g} is not a finite number of minutes, 0 or more: give one, or leave it out")
    return value * 60


def _mirror(args: argparse.Namespace) -> int:
    """``mirror refresh``: runs beside serving hubs (commits are atomic); refused while gc runs."""
    from reasoner_hub.mirror import Mirror, NotCurrent
    from reasoner_hub.paths import repo_from_id
    from reasoner_hub.repos import RepoStore
    from reasoner_hub.storelock import hold_for_serving
    from reasoner_hub.upstream import Upstream

    if "://" not in args.storage and not os.path.isdir(args.storage):
        raise UserError(f"--storage {args.storage} is not a folder: name the folder the hub serves")
    storage = open_storage(args.storage, args.s3_endpoint)
    hold = hold_for_serving(storage, args.storage)
    try:
        store = RepoStore(storage)
        repo = repo_from_id(args.repo_type, args.repo_id)
        if store.meta(repo) is None:
            raise UserError(f"{repo.label} is not in {args.storage}: a repo is mirrored when the hub first serves it")
        mirror = Mirror(Upstream(args.upstream, store, os.environ.get(UPSTREAM_TOKEN_ENV)))
        print(f"mirror: {mirror.refresh(repo)}", flush=True)
    except (NotCurrent, HubError) as problem:
        raise UserError(f"mirror refresh: {problem}") from None
    finally:
        hold.release()
    return 0


def _gc(args: argparse.Namespace) -> int:
    """Refuses (exit 2) on a bad grace, a missing folder, a serving hub or an unfinished journal (xet/gc.py)."""
    check_grace(args.grace_minutes)  # before the storage is opened: a bad flag touches nothing
    if "://" not in args.storage and not os.path.isdir(args.storage):
        raise UserError(f"--storage {args.storage} is not a folder: name the folder `reasoner-hub serve --storage` "
                        "uses (gc never creates one)")
    report = collect(open_storage(args.storage, args.s3_endpoint), args.grace_minutes, args.dry_run, args.storage)
    print(report.line(), flush=True)
    return 0


def _announce(hub: HubServer, args: argparse.Namespace, book: TokenBook) -> None:
    """What is served and how, then the hub URL alone on the last line."""
    print(f"reasoner-hub: storage {hub.storage.description}", flush=True)
    if book.open:
        print("reasoner-hub: no tokens: open to every reader and writer", flush=True)
        print(
            "reasoner-hub: WARNING no tokens configured: anyone who can reach this port may read and write every "
            "repo (development mode); pass --token-file or --token to enforce tokens",
            file=sys.stderr,
            flush=True,
        )
    else:
        print(f"reasoner-hub: {len(book)} token(s) enforced", flush=True)
    if getattr(hub.storage, "conditional_writes", True) is False:
        print(
            "reasoner-hub: WARNING this S3 store ignores conditional writes: run only one hub process on this bucket",
            file=sys.stderr,
            flush=True,
        )
    if args.no_xet:
        print("reasoner-hub: Xet off (LFS only): uploading clients must set HF_HUB_DISABLE_XET=1", flush=True)
    if args.upstream:
        every = args.upstream_ttl_minutes
        again = f"main checked again every {every:g} min" if every is not None else "main fetched once"
        print(f"reasoner-hub: mirroring missing repos and revisions from {args.upstream} ({again})", flush=True)
    # The URL alone on the last line: the address clients use (HF_ENDPOINT), never the storage's.
    print("reasoner-hub: serving; point HF_ENDPOINT at the hub URL on the next line", flush=True)
    print(hub.url, flush=True)


def _serve(args: argparse.Namespace) -> int:
    from reasoner_hub.server import HubServer

    tokens = load_token_file(args.token_file) if args.token_file else []
    tokens += [parse_token_arg(value) for value in args.token]
    book = TokenBook(tokens)
    hub = HubServer(
        args.storage,
        host=args.host,
        port=args.port,
        tokens=book,
        upstream=args.upstream,
        upstream_token=os.environ.get(UPSTREAM_TOKEN_ENV),
        upstream_ttl_s=_minutes(args.upstream_ttl_minutes, "--upstream-ttl-minutes"),
        request_log=args.request_log,
        s3_endpoint=args.s3_endpoint,
        xet=not args.no_xet,
    )
    try:
        hub.start()
    except OSError as error:
        hub.stop()  # releases the storage
        raise UserError(f"cannot listen on {args.host}:{args.port} ({error.strerror}); pick another --port") from None
    stoppers: list[threading.Thread] = []

    def _stop(signum, frame) -> None:
        stoppers.append(threading.Thread(target=hub.stop, daemon=True))
        stoppers[-1].start()

    if threading.current_thread() is threading.main_thread():  # before the URL: whoever reads it may stop us at once
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
    _announce(hub, args, book)
    hub.serve_forever()
    for stopper in list(stoppers):  # let stop() finish (the storage lease is removed last) before the exit
        stopper.join(30)
    hub.stop()
    print("reasoner-hub: stopped", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "gc":
            return _gc(args)
        if args.command == "mirror":
            return _mirror(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    return 2
