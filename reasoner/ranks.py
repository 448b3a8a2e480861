"""Work one rank does for all, and how its failure reaches the others at once.

Before training, global rank zero pins the hub commits and each node's first process downloads them, while
every other rank waits in a collective. If the working rank raised and simply died, the waiting ranks would
sit in that collective until the process-group timeout (30 minutes by default), and on other nodes nothing
kills them sooner. So every outcome, success or failure, is sent through the collective: a user error
reaches every rank as the same one-line error, any other failure as :class:`PeerFailed` (one line, exit 1,
pointing at the rank whose log has the traceback), while the failing rank raises its own exception.
"""

from __future__ import annotations

import socket
from typing import Any, Callable, TypeVar

from reasoner.errors import UserError

T = TypeVar("T")
EXIT_PEER_FAILED = 1


class PeerFailed(UserError):
    """Another rank failed with an unexpected error; this rank stops with one line instead of a traceback."""

    exit_code = EXIT_PEER_FAILED


def _describe(exc: BaseException) -> tuple[str, str]:
    """(kind, message) of a failure, in a form every rank can unpickle: exceptions themselves may not be."""
    if isinstance(exc, UserError):
        return "user", str(exc)
    text = (str(exc).strip().splitlines() or [""])[0]
    return "failed", f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def on_main_then_share(state: Any, work: Callable[[], T], what: str) -> T:
    """Run ``work`` on global rank zero and return its result on every rank; its failure fails every rank."""
    from accelerate.utils import broadcast_object_list

    outcome: list[Any] = [None]
    failure: BaseException | None = None
    if state.is_main_process:
        try:
            outcome = [("ok", work())]
        except Exception as exc:  # noqa: BLE001 - every failure is shared, then re-raised here
            failure = exc
            outcome = [_describe(exc)]
    if state.num_processes > 1:
        broadcast_object_list(outcome, from_process=0)
    kind, value = outcome[0]
    if failure is not None:
        raise failure
    if kind == "ok":
        return value
    if kind == "user":
        raise UserError(value)
    raise PeerFailed(f"global rank 0 failed while {what} ({value}); its log has the traceback")


def on_each_node_then_agree(state: Any, work: Callable[[], None], what: str) -> None:
    """Run ``work`` on each node's first process; return on every rank only if it succeeded on every node.

    This replaces a plain barrier after node-local work: every rank reports its outcome in one all-gather, so a
    node whose work failed stops all ranks of all nodes at once.
    """
    from accelerate.utils import gather_object

    failure: BaseException | None = None
    if state.is_local_main_process:
        try:
            work()
        except Exception as exc:  # noqa: BLE001 - every failure is shared, then re-raised here
            failure = exc
    if state.num_processes == 1:
        if failure is not None:
            raise failure
        return
    mine = None if failure is None else (state.process_index, socket.gethostname(), *_describe(failure))
    reports = [report for report in gather_object([mine]) if report is not None]
    if failure is not None:
        raise failure
    if not reports:
        return
    rank, host, kind, message = reports[0]
    if kind == "user":
        raise UserError(message)
    raise PeerFailed(f"rank {rank} on {host} failed while {what} ({message}); its log has the traceback")
