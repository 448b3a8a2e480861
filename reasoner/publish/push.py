"""Pushing to the hub from global rank zero: background checkpoint pushes with retries, a verified final push.

The rules this module enforces:

* a folder is pushed only after it is complete on local disk, so a failed push never loses work;
* one commit per save: a checkpoint replaces ``last-checkpoint/`` in the repo in a single commit;
* a failed push is retried with exponential backoff, never dropped; if the hub stays away, the run ends with
  everything on disk and the one ``reasoner push`` command that finishes the upload is printed;
* the final push is verified and a run checks first that its token may write the repo (reasoner.publish.checks);
* pushes are the one request rank zero makes during training, even when ``HF_HUB_OFFLINE=1`` keeps every
  other caller off the hub (as the SLURM job does after its prefetch).

The retry policy comes from ``REASONER_PUSH_ATTEMPTS``, ``REASONER_PUSH_BACKOFF_S`` (the first delay, doubled
after each failure) and ``REASONER_PUSH_MAX_BACKOFF_S``, so a cluster with long hub outages can wait longer;
``REASONER_PREEMPT_PUSH_S`` bounds how long a preempted run waits for its pushes before it exits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import shlex
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from reasoner.errors import UserError

log = logging.getLogger(__name__)

CHECKPOINT_PATH_IN_REPO = "last-checkpoint"

ATTEMPTS_ENV = "REASONER_PUSH_ATTEMPTS"
BACKOFF_ENV = "REASONER_PUSH_BACKOFF_S"
MAX_BACKOFF_ENV = "REASONER_PUSH_MAX_BACKOFF_S"
PREEMPT_PUSH_ENV = "REASONER_PREEMPT_PUSH_S"
NICE_ENV = "REASONER_PUSH_NICE"


def _env_number(name: str, default: float, kind: type, minimum: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise UserError(f"{name}={raw!r} is not valid: use {'an integer' if kind is int else 'a number'} >= {minimum}")
    return value


@dataclass
class PushPolicy:
    """How often and how patiently a push is retried; the defaults come from the environment."""

    attempts: int = field(default_factory=lambda: int(_env_number(ATTEMPTS_ENV, 6, int, 1)))
    first_delay_s: float = field(default_factory=lambda: _env_number(BACKOFF_ENV, 2.0, float, 0))
    max_delay_s: float = field(default_factory=lambda: _env_number(MAX_BACKOFF_ENV, 60.0, float, 0))
    # How much lower the uploader process's CPU priority is than training's (0-19). Hashing and sending a
    # checkpoint competes with the training step for cores; the step should win, the push can wait.
    nice: int = field(default_factory=lambda: int(_env_number(NICE_ENV, 10, int, 0)))


@dataclass
class PushJob:
    folder: Path
    path_in_repo: str
    message: str
    ignore_patterns: list[str] = field(default_factory=list)
    delete_patterns: list[str] = field(default_factory=list)
    step: int | None = None  # the optimizer step of a checkpoint job; None for a model


_OFFLINE_LOCK = threading.RLock()


@contextlib.contextmanager
def hub_reachable() -> Iterator[None]:
    """Let this thread's hub calls through even under ``HF_HUB_OFFLINE=1``.

    huggingface_hub refuses every request in offline mode; a training job sets it so that no rank downloads
    anything after the prefetch. Pushing from global rank zero is the exception the design makes, and during
    training nothing else calls the hub, so lifting the flag for the length of a push lets nothing else out.
    """
    from huggingface_hub import constants

    with _OFFLINE_LOCK:
        saved = constants.HF_HUB_OFFLINE
        constants.HF_HUB_OFFLINE = False
        try:
            yield
        finally:
            constants.HF_HUB_OFFLINE = saved


def finish_command(repo_id: str, job: PushJob) -> str:
    parts = ["reasoner", "push", "--folder", str(job.folder), "--repo-id", repo_id]
    if job.path_in_repo:
        parts += ["--path-in-repo", job.path_in_repo]
    return " ".join(shlex.quote(p) for p in parts)


class HubPusher:
    """Pushes folders to one repo in order, in a background thread, retrying each until it lands.

    The retry budget belongs to the hub, not to each push: once ``policy.attempts`` tries in a row have
    failed, the hub is taken to be gone and every later push gets one try until one succeeds. Otherwise a
    queue of checkpoints behind a dead hub would each wait out the whole policy (and huggingface_hub retries
    some requests itself on top), keeping a finished or preempted run from ending for many minutes.
    """

    def __init__(self, repo_id: str, *, private: bool = False, policy: PushPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep, in_child: bool = True) -> None:
        from reasoner.publish.uploader import ChildUploader

        self.repo_id = repo_id
        self.private = private
        self.policy = policy or PushPolicy()
        self._sleep = sleep
        # Uploads run in a child process at lower priority (see reasoner.publish.uploader); in_child=False uploads
        # from this process, for a foreground push with no training to protect (``reasoner push``).
        self._child = ChildUploader(self.policy.nice) if in_child else None
        self._ready_repos: set[str] = set()
        self._queue: queue.Queue[PushJob | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._abandon = threading.Event()  # set when drain() gives up: the worker stops retrying
        self._failures_in_a_row = 0
        self._pending: list[PushJob] = []  # submitted, not yet landed or failed
        self.pushed: list[PushJob] = []
        self.failed: list[PushJob] = []  # pushes that did not land and still matter
        self.skipped: list[PushJob] = []  # checkpoints the Trainer deleted (save_total_limit) before their turn

    # -- the one upload, with retries -------------------------------------------------------------
    @property
    def uploader_pid(self) -> int | None:
        """The uploader child's pid while it runs (None before the first push, or uploading in-process)."""
        return self._child.pid if self._child is not None else None

    def start_uploader(self) -> None:
        """Start the uploader child ahead of the first push (a run does this while its model loads)."""
        if self._child is not None:
            self._child.start()

    def _upload(self, job: PushJob) -> None:
        from reasoner.publish.uploader import upload_folder

        request = {"repo_id": self.repo_id, "private": self.private, "folder": str(job.folder),
                   "path_in_repo": job.path_in_repo, "message": job.message,
                   "ignore_patterns": job.ignore_patterns, "delete_patterns": job.delete_patterns}
        if self._child is not None:
            self._child.upload(request)
            return
        with hub_reachable():
            upload_folder(request, self._ready_repos)

    def push_now(self, job: PushJob) -> bool:
        """Upload with retries; True when it landed. Permanent errors (401/403) stop retrying at once."""
        from reasoner.publish.uploader import UploadFailed, describe_failure

        if job.step is not None and not job.folder.is_dir():
            # The Trainer rotates checkpoints out (save_total_limit) only after saving a newer one, which is
            # queued behind this job: nothing is lost by skipping it.
            log.info("skipped the push of %s: deleted locally after a newer checkpoint was saved", job.folder)
            with self._lock:
                self.skipped.append(job)
            return True
        hub_gone = self._failures_in_a_row >= self.policy.attempts
        attempts = 1 if hub_gone else self.policy.attempts
        delay = self.policy.first_delay_s
        for attempt in range(1, attempts + 1):
            if self._abandon.is_set():
                break
            try:
                self._upload(job)
            except Exception as exc:  # noqa: BLE001 - every failure is retried or reported, never dropped
                self._failures_in_a_row += 1
                reason, status = (exc.reason, exc.status) if isinstance(exc, UploadFailed) else \
                    describe_failure(exc, self.repo_id)
                if status in (401, 403):
                    log.error("push of %s refused: %s", job.folder, reason)
                    break
                if attempt == attempts:
                    gone = " (the hub has not answered for a while: one try per push until it does)" if hub_gone else ""
                    log.error("push of %s failed after %d attempt(s)%s: %s", job.folder, attempt, gone, reason)
                    break
                log.warning("push of %s failed (attempt %d/%d): %s; retrying in %.0f s", job.folder, attempt,
                            attempts, reason, delay)
                self._sleep(delay)
                delay = min(delay * 2, self.policy.max_delay_s)
                continue
            self._failures_in_a_row = 0
            with self._lock:
                self.pushed.append(job)
                if job.step is not None:
                    # This commit replaced last-checkpoint/ whole: older checkpoints that failed no longer matter.
                    self.failed = [j for j in self.failed if j.step is None or j.step > job.step]
            log.info("pushed %s to %s (%s)", job.folder, self.repo_id, job.message)
            return True
        with self._lock:
            if not any(j is job for j in self.failed):
                self.failed.append(job)
        return False

    # -- background queue -------------------------------------------------------------------------
    def submit(self, job: PushJob) -> None:
        """Queue a push; the training loop does not wait for it."""
        with self._lock:
            self._pending.append(job)
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
                if job is not None:
                    with self._lock:
                        self._pending = [j for j in self._pending if j is not job]
                self._queue.task_done()

    def drain(self, timeout: float | None = None) -> bool:
        """Wait for every queued push to land or fail for good; False if ``timeout`` ran out first.

        A preempted run has seconds before its kill: what is still queued then counts as failed, so the
        command that finishes it is printed while there is time (the checkpoint itself is already on disk).
        """
        if self._thread is None:
            return True
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._abandon.set()
            if self._child is not None:
                self._child.kill()  # an upload in flight ends now; its checkpoint is on disk
            with self._lock:
                late, self._pending = self._pending, []
                self.failed.extend(late)
            log.warning("%d push(es) to %s still unfinished after %.0f s: leaving them", len(late), self.repo_id,
                        timeout or 0)
            self._thread.join(2.0)  # an attempt that is not mid-upload ends at once
            return False
        self._thread = None
        return True

    def close(self) -> None:
        """Stop the uploader child (after :meth:`drain` and the final push)."""
        if self._child is not None:
            self._child.close()

    def unfinished_commands(self) -> list[str]:
        """The one command that brings the hub up to date with local disk (an empty list: nothing to do).

        The final model, when its push failed, is what the hub must get. Otherwise it is the newest checkpoint
        that did not land: each checkpoint replaces ``last-checkpoint/`` whole, so older ones would only be
        overwritten (and ``failed`` already forgets those that a newer landed checkpoint superseded).
        """
        with self._lock:
            failed = list(self.failed)
        finals = [job for job in failed if job.step is None]
        if finals:
            return [finish_command(self.repo_id, finals[-1])]
        checkpoints = [job for job in failed if job.step is not None]
        if checkpoints:
            return [finish_command(self.repo_id, max(checkpoints, key=lambda job: job.step or 0))]
        return []


def preempted_drain_s() -> float:
    """How long a preempted run waits for its queued pushes (``REASONER_PREEMPT_PUSH_S``, default 60 s): the
    scheduler's grace period must also cover the checkpoint save and the exit."""
    return _env_number(PREEMPT_PUSH_ENV, 60.0, float, 0)


def checkpoint_job(folder: Path, step: int) -> PushJob:
    """One commit that replaces ``last-checkpoint/`` with this checkpoint (weights, optimizer, RNG, step)."""
    return PushJob(folder=folder, path_in_repo=CHECKPOINT_PATH_IN_REPO, message=f"checkpoint step {step}",
                   delete_patterns=["*"], step=step)


def final_job(folder: Path) -> PushJob:
    """The trained model at the repo root, without intermediate checkpoints or optimizer state."""
    return PushJob(folder=folder, path_in_repo="", message="final model",
                   ignore_patterns=["checkpoint-*", "checkpoint-*/**", "*.pt", "*.pth", "training_args.bin",
                                    "metrics.jsonl", "runs/**", "wandb/**", "eval/**", "report/**", ".push-*"])
