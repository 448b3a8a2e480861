"""Processes the launchers start and stop: the generation server, and the training launcher of one node.

Stopping: a signal, a bounded wait, then SIGKILL if asked (the server may take seconds to release its GPUs).

Training on a node: SLURM's warning (SIGUSR1) and SIGTERM must become "save a checkpoint at the next step, then
stop" in every training rank, never a kill. The ranks handle both signals (reasoner.train.preemption); the launcher
between them would die of either (USR1's default action) or kill the ranks at once (torch elastic's SIGTERM
handler, with a kill 30 s later). So the launcher runs with both ignored and torch elastic told to leave SIGTERM
alone, and this process
forwards either signal to the ranks as SIGUSR1. torch starts the ranks in their own sessions, so a signal to the
task's process group does not reach them by itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

STOP_SIGNALS = (signal.SIGUSR1, signal.SIGTERM)
# The signals torch elastic's agent handles (torchrun --signals-to-handle, read from PET_SIGNALS_TO_HANDLE):
# not SIGTERM, which it would answer by terminating the ranks and killing them 30 s later, mid-save.
ELASTIC_SIGNALS = "SIGINT,SIGHUP,SIGQUIT"


def is_running(pid: int) -> bool:
    """Whether ``pid`` is alive (a zombie, exited but not yet reaped, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def children_of(pid: int, proc: Path = Path("/proc")) -> list[int]:
    """Direct children of ``pid`` (Linux /proc)."""
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid:
            found.append(int(entry.name))
    return sorted(found)


def wait_gone(pid: int, timeout: float, poll: float = 0.2) -> bool:
    """Wait up to ``timeout`` seconds for ``pid`` to exit; True when it did."""
    deadline = time.monotonic() + timeout
    while is_running(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)
    return True


def stop_process(pid: int, *, sig: signal.Signals = signal.SIGTERM, grace: float = 30.0, group: bool = False,
                 kill: bool = False) -> bool:
    """Send ``sig`` to ``pid`` (its whole process group with ``group``), wait up to ``grace`` seconds, then SIGKILL
    it if ``kill``. True when the process is gone."""
    def send(which: signal.Signals) -> None:
        try:
            os.killpg(pid, which) if group else os.kill(pid, which)
        except (ProcessLookupError, PermissionError):
            pass

    if not is_running(pid):
        return True
    send(sig)
    if wait_gone(pid, grace):
        return True
    if kill:
        send(signal.SIGKILL)
        return wait_gone(pid, 10)
    return False


def _ignore_stop_signals() -> None:
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def run_launcher(command: Sequence[str], env: Mapping[str, str], log=print) -> int:
    """Run the training launcher with the stop signals ignored; forward them to its children (the ranks) as
    SIGUSR1. Returns the launcher's exit code."""
    child = subprocess.Popen(list(command), env={**env, "PET_SIGNALS_TO_HANDLE": ELASTIC_SIGNALS},
                             preexec_fn=_ignore_stop_signals)

    def forward(signum: int, _frame: object) -> None:
        ranks = children_of(child.pid)
        for rank in ranks:
            try:
                os.kill(rank, signal.SIGUSR1)
            except ProcessLookupError:
                pass
        log(f"{signal.Signals(signum).name}: asked {len(ranks)} training rank(s) to checkpoint and stop")

    for sig in STOP_SIGNALS:
        signal.signal(sig, forward)
    try:
        return child.wait()
    except KeyboardInterrupt:  # Ctrl-C reached the launcher too (same terminal): let it stop its ranks first
        child.wait()
        raise
    finally:
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)


def flag_value(args: Sequence[str], flag: str) -> str | None:
    """The value after ``flag`` in an argument list, or None."""
    items = list(args)
    return items[items.index(flag) + 1] if flag in items[:-1] else None


def python() -> str:
    """The interpreter running this process: what the launchers' child commands run with."""
    return sys.executable or "python3"
