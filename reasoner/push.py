"""Pushing to the hub from global rank zero: background checkpoint pushes with retries, a verified final push.

The rules this module enforces:

* a folder is pushed only after it is complete on local disk, so a failed push never loses work;
* one commit per save: a checkpoint replaces ``last-checkpoint/`` in the repo in a single commit;
* a failed push is retried with exponential backoff, never dropped; if the hub stays away, the run ends with
  everything on disk and the one ``reasoner push`` command that finishes the upload is printed;
* the final push is verified: every local file is on the hub with the same size and hash.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import shlex
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from reasoner.errors import UserError

log = logging.getLogger(__name__)

CHECKPOINT_PATH_IN_REPO = "last-checkpoint"
# What a checkpoint folder holds that a model repo does not need at its root.
TRAINING_STATE_FILES = ("optimizer.pt", "scheduler.pt", "rng_state*.pth", "trainer_state.json", "training_args.bin",
                        "global_step*/**", "latest", "zero_to_fp32.py")


@dataclass
class PushPolicy:
    attempts: int = 6
    first_delay_s: float = 2.0
    max_delay_s: float = 60.0


@dataclass
class PushJob:
    folder: Path
    path_in_repo: str
    message: str
    ignore_patterns: list[str] = field(default_factory=list)
    delete_patterns: list[str] = field(default_factory=list)


def finish_command(repo_id: str, job: PushJob) -> str:
    parts = ["reasoner", "push", "--folder", str(job.folder), "--repo-id", repo_id]
    if job.path_in_repo:
        parts += ["--path-in-repo", job.path_in_repo]
    return " ".join(shlex.quote(p) for p in parts)


def git_blob_sha1(path: Path) -> str:
    """The id git (and the hub) gives a regular file."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class HubPusher:
    """Pushes folders to one repo in order, in a background thread, retrying each until it lands."""

    def __init__(self, repo_id: str, *, private: bool = False, policy: PushPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.repo_id = repo_id
        self.private = private
        self.policy = policy or PushPolicy()
        self._sleep = sleep
        self._queue: queue.Queue[PushJob | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._repo_ready = False
        self.pushed: list[PushJob] = []
        self.failed: list[PushJob] = []

    # -- the one upload, with retries -------------------------------------------------------------
    def _ensure_repo(self) -> None:
        if self._repo_ready:
            return
        from huggingface_hub import HfApi

        HfApi().create_repo(self.repo_id, private=self.private, exist_ok=True)
        self._repo_ready = True

    def _upload(self, job: PushJob) -> None:
        from huggingface_hub import HfApi

        self._ensure_repo()
        HfApi().upload_folder(
            repo_id=self.repo_id,
            folder_path=str(job.folder),
            path_in_repo=job.path_in_repo or None,
            commit_message=job.message,
            ignore_patterns=job.ignore_patterns or None,
            delete_patterns=job.delete_patterns or None,
        )

    def push_now(self, job: PushJob) -> bool:
        """Upload with retries; True when it landed. Permanent errors (401/403/404) stop retrying at once."""
        from reasoner.hub import describe_hub_error

        delay = self.policy.first_delay_s
        for attempt in range(1, self.policy.attempts + 1):
            try:
                self._upload(job)
                self.pushed.append(job)
                log.info("pushed %s to %s (%s)", job.folder, self.repo_id, job.message)
                return True
            except Exception as exc:  # noqa: BLE001 - every failure is retried or reported, never dropped
                friendly = describe_hub_error(exc, self.repo_id, "model", None, "pushing to")
                reason = str(friendly) if friendly else f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                status = getattr(getattr(exc, "response", None), "status_code", None)
                if status in (401, 403):
                    log.error("push of %s refused: %s", job.folder, reason)
                    break
                if attempt == self.policy.attempts:
                    log.error("push of %s failed after %d attempts: %s", job.folder, attempt, reason)
                    break
                log.warning("push of %s failed (attempt %d/%d): %s; retrying in %.0f s", job.folder, attempt,
                            self.policy.attempts, reason, delay)
                self._sleep(delay)
                delay = min(delay * 2, self.policy.max_delay_s)
        self.failed.append(job)
        return False

    # -- background queue -------------------------------------------------------------------------
    def submit(self, job: PushJob) -> None:
        """Queue a push; the training loop does not wait for it."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._worker, name="reasoner-hub-push", daemon=True)
            self._thread.start()
        self._queue.put(job)

    def _worker(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                self.push_now(job)
            finally:
                self._queue.task_done()

    def drain(self) -> None:
        """Wait for every queued push to land or fail for good."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def unfinished_commands(self) -> list[str]:
        return [finish_command(self.repo_id, job) for job in self.failed]


def checkpoint_job(folder: Path, step: int) -> PushJob:
    """One commit that replaces ``last-checkpoint/`` with this checkpoint (weights, optimizer, RNG, step)."""
    return PushJob(folder=folder, path_in_repo=CHECKPOINT_PATH_IN_REPO, message=f"checkpoint step {step}",
                   delete_patterns=["*"])


def final_job(folder: Path) -> PushJob:
    """The trained model at the repo root, without intermediate checkpoints or optimizer state."""
    return PushJob(folder=folder, path_in_repo="", message="final model",
                   ignore_patterns=["checkpoint-*", "checkpoint-*/**", "*.pt", "*.pth", "training_args.bin",
                                    "metrics.jsonl", "runs/**", "wandb/**", "eval/**", "report/**", ".push-*"])


def verify_upload(repo_id: str, folder: Path, job: PushJob) -> list[str]:
    """Compare every local file that the job uploads with the hub's record of it; return the mismatches."""
    import fnmatch

    from huggingface_hub import HfApi

    remote = {}
    for entry in HfApi().list_repo_tree(repo_id, recursive=True):
        if hasattr(entry, "size") and entry.__class__.__name__ == "RepoFile":
            remote[entry.path] = entry
    problems = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if any(fnmatch.fnmatch(rel, pattern) for pattern in job.ignore_patterns):
            continue
        name = f"{job.path_in_repo}/{rel}" if job.path_in_repo else rel
        entry = remote.get(name)
        if entry is None:
            problems.append(f"{name}: missing on the hub")
            continue
        if entry.size != path.stat().st_size:
            problems.append(f"{name}: {entry.size} bytes on the hub, {path.stat().st_size} locally")
            continue
        lfs = getattr(entry, "lfs", None)
        if lfs is not None:
            remote_sha = lfs.sha256 if hasattr(lfs, "sha256") else lfs["sha256"]
            if remote_sha != sha256(path):
                problems.append(f"{name}: sha256 differs")
        elif entry.blob_id != git_blob_sha1(path):
            problems.append(f"{name}: content differs")
    return problems


def push_folder(repo_id: str, folder: Path, *, path_in_repo: str = "", private: bool = False,
                policy: PushPolicy | None = None) -> None:
    """``reasoner push``: upload a folder with retries and verify it; UserError if it cannot land."""
    if not folder.is_dir():
        raise UserError(f"nothing to push: {folder} is not a folder")
    job = final_job(folder) if not path_in_repo else PushJob(folder, path_in_repo, f"upload {folder.name}", delete_patterns=["*"])
    pusher = HubPusher(repo_id, private=private, policy=policy)
    if not pusher.push_now(job):
        raise UserError(f"push of {folder} to {repo_id} failed; everything is still on disk: run '{finish_command(repo_id, job)}' when the hub is back")
    problems = verify_upload(repo_id, folder, job)
    if problems:
        raise UserError(f"push of {folder} to {repo_id} did not verify ({problems[0]}; {len(problems)} problem(s)): run '{finish_command(repo_id, job)}' again")
