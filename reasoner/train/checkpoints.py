"""When a checkpoint is complete: every rank's part is on disk, which rank zero records once it has seen them.

The Trainer saves a checkpoint on every rank at once: rank zero writes the weights, optimizer and scheduler and
then ``trainer_state.json``, while each rank writes its own RNG state (``rng_state_N.pth``) and, under
DeepSpeed, its own optimizer (and ZeRO-3 parameter) shards. Rank zero does not wait for the others, so its
``trainer_state.json`` can exist while another rank is still writing. Resuming from, or pushing, such a folder
would lose that rank's part.

So after each save every rank lists the parts it wrote, the lists meet on rank zero in one collective (which
is also the moment every rank has finished saving), and rank zero writes ``checkpoint_complete.json`` naming
the world size and every part, once it sees them all in its own view of the folder. A checkpoint is complete
when its trainer state and that record agree and every recorded file is there. On several nodes this needs
``output_dir`` on a filesystem they share, as resuming does anyway.

A folder without the record is complete only if a single process saved it (``rng_state.pth``, no per-rank
files, no DeepSpeed shards): then rank zero wrote everything, and ``trainer_state.json`` last.
"""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path
from typing import Any

log = logging.getLogger("reasoner.train")

TRAINER_STATE = "trainer_state.json"
RECORD = "checkpoint_complete.json"
SINGLE_PROCESS_RNG = "rng_state.pth"
DEEPSPEED_LATEST = "latest"


def checkpoint_step(folder: Path) -> int | None:
    """The optimizer step in a checkpoint's trainer state, or None when it has no readable one."""
    state = _read_json(folder / TRAINER_STATE)
    step = state.get("global_step") if isinstance(state, dict) else None
    return step if isinstance(step, int) else None


def rank_parts(folder: Path, rank: int, world_size: int) -> list[str]:
    """The files of ``folder`` that rank ``rank`` wrote itself: its RNG state and its DeepSpeed shards."""
    names = [SINGLE_PROCESS_RNG if world_size == 1 else f"rng_state_{rank}.pth"]
    names += [p.relative_to(folder).as_posix() for p in folder.glob(f"*/*zero_pp_rank_{rank}_mp_rank_*_states.pt")]
    return sorted(name for name in names if (folder / name).is_file())


def missing_parts(folder: Path, reports: list[tuple[int, str, list[str]]], world_size: int,
                  *, model_only: bool) -> list[str]:
    """What keeps ``folder`` from being complete, given every rank's (rank, host, parts); empty when nothing."""
    problems = []
    by_rank = {rank: (host, parts) for rank, host, parts in reports}
    deepspeed = (folder / DEEPSPEED_LATEST).is_file()
    for rank in range(world_size):
        host, parts = by_rank.get(rank, ("?", []))
        if not model_only and not any(Path(p).name.startswith("rng_state") for p in parts):
            problems.append(f"rank {rank} on {host} wrote no RNG state")
        if not model_only and deepspeed and not any(p.endswith("optim_states.pt") for p in parts):
            problems.append(f"rank {rank} on {host} wrote no DeepSpeed optimizer shard")
        unseen = [p for p in parts if not (folder / p).is_file()]
        if unseen:
            problems.append(f"rank {rank} on {host} wrote {', '.join(unseen)}, which rank 0 cannot see "
                            f"(put output_dir on a filesystem every node shares)")
    return problems


def write_record(folder: Path, step: int, world_size: int, files: list[str]) -> None:
    """Record ``folder`` as complete; written to a temporary name and renamed, so it is never half there."""
    record = {"global_step": step, "world_size": world_size, "files": sorted(files)}
    tmp = folder / f".{RECORD}.tmp"
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    tmp.replace(folder / RECORD)


def is_complete(folder: Path) -> bool:
    """Whether ``folder`` is a checkpoint every rank finished saving (see the module docstring)."""
    step = checkpoint_step(folder)
    if step is None:
        return False
    record = _read_json(folder / RECORD)
    if record is None:
        return _saved_by_one_process(folder)
    files = record.get("files") if isinstance(record, dict) else None
    return record.get("global_step") == step and isinstance(files, list) and \
        all(isinstance(name, str) and (folder / name).is_file() for name in files)


def why_incomplete(folder: Path) -> str:
    """A short reason for a checkpoint that :func:`is_complete` refuses."""
    if checkpoint_step(folder) is None:
        return f"it has no readable {TRAINER_STATE} (its save was cut short)"
    if not (folder / RECORD).is_file():
        return f"it has no {RECORD}: not every rank's part was seen on disk"
    return f"a file its {RECORD} names is missing"


def _saved_by_one_process(folder: Path) -> bool:
    return (folder / SINGLE_PROCESS_RNG).is_file() and not any(folder.glob("rng_state_*.pth")) \
        and not (folder / DEEPSPEED_LATEST).exists()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def record_when_all_saved(folder: Path, step: int, dist: Any, *, model_only: bool) -> bool:
    """Called on every rank right after a save: gather every rank's parts, and record on rank zero.

    Returns True on rank zero when the checkpoint is recorded complete (False on other ranks). ``dist`` is
    accelerate's ``PartialState``.
    """
    world_size = dist.num_processes
    mine = (dist.process_index, socket.gethostname(), rank_parts(folder, dist.process_index, world_size))
    if world_size > 1:
        from accelerate.utils import gather_object

        reports = gather_object([mine])
    else:
        reports = [mine]
    if not dist.is_main_process:
        return False
    problems = missing_parts(folder, reports, world_size, model_only=model_only)
    if problems:
        log.warning("checkpoint %s is not complete, so it is neither resumable nor pushed: %s", folder.name,
                    "; ".join(problems))
        return False
    write_record(folder, step, world_size, [part for _, _, parts in reports for part in parts])
    return True
