"""Checkpoints a run can continue from: the newest complete one on local disk, or the one an earlier run pushed.

What makes a checkpoint complete (every rank's part on disk, recorded by rank zero) is decided in
``reasoner.train.checkpoints``. A folder that is not complete (a kill after the preemption grace, a full disk, a rank
that never finished its part) must never be resumed from: it is skipped, and removed when the run itself saw
the save fail.

On a fresh machine (``--resume-from-hub``) the newest checkpoint is the repo's ``last-checkpoint/`` folder,
which the pusher replaces in one commit per complete save. It is fetched at one pinned commit into a private
temporary folder and renamed into ``output_dir/checkpoint-<step>`` only once complete, so an interrupted
download never looks like a checkpoint.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import socket
from pathlib import Path
from typing import Iterator

from reasoner.train.checkpoints import TRAINER_STATE, checkpoint_step, is_complete, why_incomplete
from reasoner.errors import UserError
from reasoner.publish.push import CHECKPOINT_PATH_IN_REPO, hub_reachable

log = logging.getLogger("reasoner.train")

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


def checkpoints(output_dir: Path) -> list[Path]:
    """Every ``checkpoint-N`` folder in ``output_dir``, newest (highest N) first."""
    if not output_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in output_dir.iterdir() if p.is_dir() and (m := CHECKPOINT_RE.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def newest_checkpoint(output_dir: Path) -> Path | None:
    """The newest complete checkpoint; incomplete ones are reported and passed over."""
    for folder in checkpoints(output_dir):
        if is_complete(folder):
            return folder
        log.warning("passing over %s: %s", folder, why_incomplete(folder))
    return None


def remove_incomplete_checkpoints(output_dir: Path) -> list[Path]:
    """Delete checkpoint folders whose save did not finish; return what was removed."""
    removed = []
    for folder in checkpoints(output_dir):
        if not is_complete(folder):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


# -- a full disk ---------------------------------------------------------------------------------------
_DISK_FULL_TEXT = ("no space left on device", "storagefull", "disk quota exceeded")
# What torch.save's C++ writer says when a write comes up short ("iostream error", "unexpected pos ...",
# "file write failed"): a full disk, or another I/O error.
_SHORT_WRITE_TEXT = ("iostream error", "unexpected pos", "pytorchstreamwriter", "write")
# Below this much free space, a failed write is taken to be the full disk's doing.
NEARLY_FULL_BYTES = 64 * 1024 * 1024


def _free_bytes(folder: Path) -> int | None:
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            try:
                return shutil.disk_usage(candidate).free
            except OSError:
                return None
    return None


def is_disk_full(exc: BaseException, folder: Path | None = None) -> bool:
    """Whether an exception (or one it was raised from) means the disk is full.

    ``json``/``open`` raise ``OSError(ENOSPC)`` and safetensors says so in its message, but torch.save's
    writer only reports "iostream error" or "unexpected pos": for such a short write, a disk under
    ``folder`` with almost nothing free settles it.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    write_error = False
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(current).lower()
        if any(marker in text for marker in _DISK_FULL_TEXT):
            return True
        write_error = write_error or (isinstance(current, (OSError, RuntimeError))
                                      and any(marker in text for marker in _SHORT_WRITE_TEXT))
        current = current.__cause__ or current.__context__
    if write_error and folder is not None:
        free = _free_bytes(folder)
        return free is not None and free < NEARLY_FULL_BYTES
    return False


@contextlib.contextmanager
def disk_full_is_a_user_error(output_dir: Path) -> Iterator[None]:
    """Turn "no space left" anywhere in training or saving into one line, after removing the half-written checkpoint.

    What stays on disk is only what a later run can trust: complete checkpoints, from which the same command
    resumes once there is room.
    """
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - anything but a full disk is re-raised unchanged
        if not is_disk_full(exc, output_dir):
            raise
        removed = remove_incomplete_checkpoints(output_dir)
        newest = newest_checkpoint(output_dir)
        kept = f"; the newest complete checkpoint is {newest.name}" if newest else "; no complete checkpoint was saved"
        dropped = f" (removed the incomplete {', '.join(p.name for p in removed)})" if removed else ""
        raise UserError(
            f"no space left on the disk of {output_dir}{dropped}{kept}: free space there or set --output_dir to a "
            f"larger disk, then run the same command again"
        ) from None


# -- resuming from the hub ------------------------------------------------------------------------------
def _is_missing(exc: BaseException) -> bool:
    from huggingface_hub import errors

    status = getattr(getattr(exc, "response", None), "status_code", None)
    return isinstance(exc, (errors.RepositoryNotFoundError, errors.RevisionNotFoundError)) or status == 404


def fetch_hub_checkpoint(recipe, output_dir: Path) -> Path | None:
    """Download the newest checkpoint pushed to ``hub.repo_id`` into ``output_dir/checkpoint-<step>``.

    Returns the folder, or None (logged) when the hub holds no checkpoint, in which case the run starts fresh.
    An unreachable hub or a rejected token is a UserError: silently starting over would waste the compute
    the checkpoint holds.
    """
    from huggingface_hub import snapshot_download

    from reasoner.hubclient.calls import api as hub_api
    from reasoner.hubclient.calls import client_agent, endpoint, hub_call

    repo_id = recipe.hub.checkpoint_repo()
    api = hub_api()
    marker = f"{CHECKPOINT_PATH_IN_REPO}/{TRAINER_STATE}"
    with hub_reachable():
        info = hub_call(lambda: _main_info(api, repo_id), repo_id, "model", "main", "looking for a checkpoint in")
        if info is None:
            log.warning("no checkpoint to resume from: %s does not exist at %s (if it is private, set HF_TOKEN); "
                        "starting from step 0", repo_id, endpoint())
            return None
        names = {sibling.rfilename for sibling in info.siblings or []}
        if marker not in names:
            log.warning("no checkpoint to resume from: %s@%s has no %s/; starting from step 0", repo_id,
                        (info.sha or "main")[:12], CHECKPOINT_PATH_IN_REPO)
            return None
        output_dir.mkdir(parents=True, exist_ok=True)
        # Private to this process: nodes sharing output_dir each fetch into their own folder.
        staging = output_dir / f".hub-checkpoint-{socket.gethostname()}-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            hub_call(lambda: snapshot_download(repo_id, revision=info.sha, allow_patterns=[f"{CHECKPOINT_PATH_IN_REPO}/*"],
                                               local_dir=str(staging), user_agent=client_agent()),
                     repo_id, "model", info.sha, "downloading the checkpoint of")
            fetched = staging / CHECKPOINT_PATH_IN_REPO
            step = checkpoint_step(fetched)
            if step is None or not is_complete(fetched):
                raise UserError(f"{repo_id}@{info.sha} has an incomplete {CHECKPOINT_PATH_IN_REPO}/ "
                                f"({why_incomplete(fetched)}): resume from a local checkpoint, or start over with --no-resume")
            target = output_dir / f"checkpoint-{step}"
            if not is_complete(target):
                shutil.rmtree(target, ignore_errors=True)
                try:
                    fetched.rename(target)
                except OSError:
                    if not is_complete(target):  # not another node that got there first
                        raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    log.info("fetched checkpoint step %d of %s@%s into %s", step, repo_id, info.sha[:12], target)
    return target


def _main_info(api, repo_id: str):
    """The repo's ``main`` (its ``repo_info``), or None when the repo does not exist; any other failure, a rejected
    token included, is raised for ``hub_call`` to turn into one line."""
    try:
        return api.repo_info(repo_id, revision="main")
    except Exception as exc:  # noqa: BLE001 - only "not there" is an answer here
        if _is_missing(exc) and not _is_auth_error(exc):
            return None
        raise


def _is_auth_error(exc: BaseException) -> bool:
    return getattr(getattr(exc, "response", None), "status_code", None) in (401, 403)
