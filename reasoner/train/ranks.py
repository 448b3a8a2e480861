"""Work one rank does for all, and how its failure reaches the others at once.

Before training, global rank zero pins the hub commits and each node's first process downloads them, while
every other rank waits in a collective. If the working rank raised and simply died, the waiting ranks would
sit in that collective until the process-group timeout (30 minutes by default), and on other nodes nothing
kills them sooner. So every outcome, success or failure, is sent through the collective: a user error
reaches every rank as the same one-line error, any other failure as :class:`PeerFailed` (one line, exit 1,
pointing at the rank whose log has the traceback), while the failing rank raises its own exception.

The same holds during training for work every rank does at the same point (a reward function on its share of
the completions): :func:`agreed_on_every_rank` makes a failure on one rank every rank's failure at that call,
before the next collective, instead of leaving the others in it until the timeout.
"""

from __future__ import annotations

import functools
import os
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

    This replaces a plain barrier after node-local work: every rank reports its outcome (:func:`raise_if_any_failed`),
    so a node whose work failed stops all ranks of all nodes at once.
    """
    failure: BaseException | None = None
    if state.is_local_main_process:
        try:
            work()
        except Exception as exc:  # noqa: BLE001 - every failure is shared, then re-raised here
            failure = exc
    raise_if_any_failed(failure, what)


def _process_group() -> Any:
    """torch.distributed when a process group is up (training, or a launch of several ranks), else None."""
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def max_over_ranks(value: int) -> int:
    """The largest of every rank's ``value``, in one all-reduce of one number (``value`` itself on one process).

    Every rank must call it at the same point, like any collective.
    """
    dist = _process_group()
    if dist is None:
        return value
    import torch

    number = torch.tensor([value], dtype=torch.int64)
    if dist.get_backend() == "nccl":
        number = number.cuda()  # NCCL reduces only on the rank's current GPU
    dist.all_reduce(number, op=dist.ReduceOp.MAX)
    return int(number.item())


def raise_if_any_failed(failure: BaseException | None, what: str) -> None:
    """Every rank calls this at the same point with its own failure (or None); if any rank failed, every rank raises.

    The failing rank raises its own exception; the others raise the same UserError line, or :class:`PeerFailed`
    naming the rank. When all is well it costs one all-reduce of one number; the descriptions travel (an
    all-gather of small objects) only after a failure.
    """
    if not max_over_ranks(0 if failure is None else 1):
        return
    dist = _process_group()
    if dist is None:
        raise failure  # type: ignore[misc] - one process: the flag was its own
    from accelerate.utils import gather_object

    mine = None if failure is None else (dist.get_rank(), socket.gethostname(), *_describe(failure))
    reports = [report for report in gather_object([mine]) if report is not None]
    if failure is not None:
        raise failure
    rank, host, kind, message = reports[0]
    if kind == "user":
        raise UserError(message)
    raise PeerFailed(f"rank {rank} on {host} failed while {what} ({message}); its log has the traceback")


def agreed_on_every_rank(fn: Callable[..., T], what: str) -> Callable[..., T]:
    """``fn`` such that a failure on any rank fails this call on every rank (see :func:`raise_if_any_failed`).

    For work every rank does at the same point (TRL calls each reward function on every rank, every step, in the
    same order): without it, the rank that failed exits while the others wait in the next collective, which over
    NCCL across nodes ends only at the process-group timeout.
    """

    @functools.wraps(fn)
    def agreed(*args: Any, **kwargs: Any) -> T:
        failure: BaseException | None = None
        result: Any = None
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - shared with every rank, then re-raised here
            failure = exc
        raise_if_any_failed(failure, what)
        return result

    return agreed


def ranks_by_node(state: Any) -> dict[str, list[int]]:
    """Every rank's global rank under the name of the node it runs on (SLURM's name, else the host name), gathered
    from all ranks: what rank zero logs at the start, so that a layout whose nodes run different numbers of ranks
    shows where each one actually runs. One all-gather of small objects; one process: its own entry only."""
    node = os.environ.get("SLURMD_NODENAME") or socket.gethostname()
    pairs = [(node, state.process_index)]
    if state.num_processes > 1:
        from accelerate.utils import gather_object

        pairs = gather_object(pairs)
    found: dict[str, list[int]] = {}
    for name, rank in sorted(pairs, key=lambda pair: pair[1]):
        found.setdefault(name, []).append(rank)
    return found
