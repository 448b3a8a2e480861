"""Background uploads in a child process at a lower CPU priority than training.

A push is CPU work (hashing every file for LFS, building and sending the commit) that would otherwise run
in the training process. As a thread there it competes with the training loop for the GIL as well as for
cores, and a thread's niceness does nothing about the GIL: while the push thread holds it, the loop waits.
In a child process the push holds no lock the loop needs, and its niceness really does put it behind training.

The child (``python -m reasoner.publish.uploader``) is started with a run that pushes checkpoints (else on its
first push) and reused for the run; if it dies, the next attempt starts a new one. It reads one JSON
request per line on stdin, makes the commit with huggingface_hub, and answers one JSON line:
``{"ok": true}`` or ``{"ok": false, "reason": "...", "status": 403}``. It exits when stdin closes, so it
never outlives the training process, and it ignores SIGUSR1 and SIGTERM, which SLURM sends to every
process of a job step: the training process decides when its pushes stop. It inherits HF_ENDPOINT and
HF_TOKEN through its environment (never its command line) and is the one process allowed to reach the hub
while ``HF_HUB_OFFLINE=1`` keeps the training ranks off it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from reasoner.hubclient.calls import PARENT_ENV, api, describe_hub_error, endpoint

NICE_ENV = "REASONER_UPLOADER_NICE"


class UploadFailed(Exception):
    """One upload did not land: ``reason`` is the one-line explanation, ``status`` the hub's HTTP status."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def describe_failure(exc: BaseException, repo_id: str) -> tuple[str, int | None]:
    """The one-line reason and the HTTP status of a failed push (the status decides whether to retry)."""
    friendly = describe_hub_error(exc, repo_id, "model", None, "pushing to")
    text = str(exc).splitlines()[0] if str(exc) else ""
    reason = str(friendly) if friendly else f"{type(exc).__name__}: {text}"
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return reason, status if isinstance(status, int) else None


def upload_folder(request: dict[str, Any], ready: set[str]) -> None:
    """Create the repo once per process, then commit the folder (one commit)."""
    client = api()
    repo_id = request["repo_id"]
    if repo_id not in ready:
        client.create_repo(repo_id, private=bool(request.get("private")), exist_ok=True)
        ready.add(repo_id)
    client.upload_folder(
        repo_id=repo_id,
        folder_path=request["folder"],
        path_in_repo=request.get("path_in_repo") or None,
        commit_message=request["message"],
        ignore_patterns=request.get("ignore_patterns") or None,
        delete_patterns=request.get("delete_patterns") or None,
    )


def serve(requests: IO[str], replies: IO[str]) -> None:
    """The child's loop: one request line in, one reply line out, until the parent closes stdin."""
    ready: set[str] = set()
    for line in requests:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            upload_folder(request, ready)
            reply: dict[str, Any] = {"ok": True}
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the parent, which retries or reports
            reason, status = describe_failure(exc, request.get("repo_id", "?"))
            reply = {"ok": False, "reason": reason, "status": status}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


class ChildUploader:
    """The parent's handle on the uploader child: start it on first use, send a job, wait for its answer."""

    def __init__(self, nice: int) -> None:
        self.nice = nice
        self._process: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self._process.poll() is None else None

    def start(self) -> subprocess.Popen[str]:
        """Start the child now (it imports huggingface_hub, ~1 s of CPU), so the first save finds it ready."""
        if self._process is not None and self._process.poll() is None:
            return self._process
        package_root = str(Path(__file__).resolve().parents[1])  # importable even when reasoner is not installed
        # The hub this process uses now (HF_ENDPOINT as huggingface_hub read it), and online: pushing is the
        # one hub call a training job makes after its prefetch.
        env = {**os.environ, "HF_ENDPOINT": endpoint(), "HF_HUB_OFFLINE": "0", PARENT_ENV: str(os.getpid()),
               NICE_ENV: str(self.nice),
               "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)}
        self._process = subprocess.Popen([sys.executable, "-m", "reasoner.publish.uploader"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, text=True, env=env, close_fds=True)
        return self._process

    def upload(self, request: dict[str, Any]) -> None:
        """Run one upload in the child; raise :class:`UploadFailed` if it did not land or the child died."""
        with self._lock:
            process = self.start()
            assert process.stdin is not None and process.stdout is not None
            try:
                process.stdin.write(json.dumps(request) + "\n")
                process.stdin.flush()
                line = process.stdout.readline()
            except (BrokenPipeError, OSError):
                line = ""
            if not line:
                code = process.poll()
                self._process = None
                raise UploadFailed(f"the uploader process stopped (exit code {code})")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise UploadFailed(reply.get("reason") or "upload failed", reply.get("status"))

    def close(self, timeout: float = 10.0) -> None:
        """Let the child finish and exit (it exits when its stdin closes)."""
        process, self._process = self._process, None
        if process is None:
            return
        try:
            if process.stdin is not None:
                process.stdin.close()
            process.wait(timeout)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()

    def kill(self) -> None:
        """Stop an upload in flight (a preempted run that cannot wait for it any longer)."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()


def main() -> int:
    import signal

    # SLURM signals every process of a job step: the preemption warning (USR1) and SIGTERM are for the
    # training process, which saves, waits for its pushes as long as it can, then closes or kills this one.
    for name in ("SIGUSR1", "SIGTERM"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    nice = int(os.environ.get(NICE_ENV, "0") or 0)
    if nice > 0 and hasattr(os, "nice"):
        try:
            os.nice(nice)
        except OSError:
            pass  # a sandbox that refuses: uploads still work, at the training's priority
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the reply stream
    serve(sys.stdin, replies)
    return 0


if __name__ == "__main__":
    sys.exit(main())
