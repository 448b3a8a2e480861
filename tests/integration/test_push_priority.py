"""Background pushes yield the CPU to training: they run in a child process at a lower priority.

A real uploader child against a real hub over HTTP: its niceness is read from the operating system, its
requests are attributed to the training process in the hub's log, and its failures come back as one line.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from huggingface_hub import HfApi, constants

from reasoner.errors import UserError
from reasoner_hub import HubServer
from reasoner_hub.auth import Token
from reasoner_hub.metrics import agent_fields
from reasoner.publish.push import HubPusher, PushPolicy, checkpoint_job
from ports import free_port

WRITE_TOKEN = "hf_priority_write_token_0123456789"
TOKENS = [Token("trainer", WRITE_TOKEN, "write")]


def checkpoint(tmp_path: Path, step: int) -> Path:
    folder = tmp_path / "run" / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (folder / "optimizer.pt").write_bytes(os.urandom(4096))
    return folder


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="process priorities are POSIX")
def test_pushes_run_in_a_lower_priority_child_and_land(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", WRITE_TOKEN)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # as in a training job: the uploader alone may reach the hub
    log = tmp_path / "requests.jsonl"
    with HubServer(tmp_path / "bucket", tokens=TOKENS, request_log=str(log)) as hub:
        monkeypatch.setattr(constants, "ENDPOINT", hub.url)
        pusher = HubPusher("org/niced", policy=PushPolicy(attempts=1, nice=5))
        pusher.submit(checkpoint_job(checkpoint(tmp_path, 1), 1))
        assert pusher.drain(timeout=60)
        child = pusher.uploader_pid
        assert child is not None and child != os.getpid()
        assert os.getpriority(os.PRIO_PROCESS, child) == min(19, os.getpriority(os.PRIO_PROCESS, 0) + 5)
        assert os.getpriority(os.PRIO_PROCESS, 0) != os.getpriority(os.PRIO_PROCESS, child)
        pusher.submit(checkpoint_job(checkpoint(tmp_path, 2), 2))
        assert pusher.drain(timeout=60)
        assert pusher.uploader_pid == child, "the uploader is started once and reused"
        pusher.close()
        assert pusher.uploader_pid is None
        assert [job.message for job in pusher.pushed] == ["checkpoint step 1", "checkpoint step 2"]
        files = HfApi(endpoint=hub.url, token=WRITE_TOKEN).list_repo_files("org/niced")
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert "last-checkpoint/optimizer.pt" in files
    commits = [r for r in records if r["method"] == "POST" and "/commit/" in r["path"]]
    agents = [agent_fields(r["user_agent"]) for r in commits]
    assert [(a.get("pid"), a.get("parent")) for a in agents] == [(str(child), str(os.getpid()))] * 2


def test_a_failed_upload_comes_back_as_one_line_and_is_kept(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    pusher = HubPusher("org/away", policy=PushPolicy(attempts=1))
    job = checkpoint_job(checkpoint(tmp_path, 3), 3)
    with caplog.at_level("ERROR", logger="reasoner.publish.push"):
        assert pusher.push_now(job) is False
    pusher.close()
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "unreachable" in errors[0] and "\n" not in errors[0], errors
    assert pusher.failed == [job]
    assert pusher.unfinished_commands() == [f"reasoner push --folder {job.folder} --repo-id org/away "
                                            f"--path-in-repo last-checkpoint"]


def test_an_uploader_that_dies_mid_push_is_replaced_at_the_next_attempt(tmp_path, monkeypatch):
    """A child that dies during an upload (killed, out of memory) fails that attempt; the retry starts a new one."""
    from reasoner.publish.uploader import ChildUploader, UploadFailed

    silent = socket.socket()  # accepts connections (the backlog) and never answers: the upload hangs
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    uploader = ChildUploader(nice=0)
    request = {"repo_id": "org/x", "folder": str(tmp_path), "message": "m"}
    try:
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
        first = uploader.start()
        killer = threading.Timer(3.0, first.kill)
        killer.start()
        with pytest.raises(UploadFailed, match="uploader process stopped"):
            uploader.upload(request)
        killer.join()
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{free_port()}")  # nothing listens there
        with pytest.raises(UploadFailed, match="unreachable"):  # a new child answered
            uploader.upload(request)
        assert uploader.pid is not None and uploader.pid != first.pid
    finally:
        uploader.close()
        silent.close()


def test_push_nice_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("REASONER_PUSH_NICE", "4")
    assert PushPolicy().nice == 4
    monkeypatch.setenv("REASONER_PUSH_NICE", "low")
    with pytest.raises(UserError, match="REASONER_PUSH_NICE='low' is not valid"):
        PushPolicy()


def test_the_uploader_child_never_prints_into_its_reply_stream(tmp_path):
    """Stray prints from libraries go to stderr; stdout carries only the JSON replies."""
    request = {"repo_id": "org/x", "folder": str(tmp_path / "missing"), "message": "m"}
    env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}", "HF_HUB_OFFLINE": "0"}
    done = subprocess.run([sys.executable, "-m", "reasoner.publish.uploader"], input=json.dumps(request) + "\n",
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    replies = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(replies) == 1 and replies[0]["ok"] is False and replies[0]["reason"], done.stdout


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="POSIX signals")
def test_the_uploader_outlives_the_signals_slurm_sends_to_the_whole_step(tmp_path):
    """SLURM's preemption warning and SIGTERM reach every process of the step; the push must not die of them."""
    from reasoner.publish.uploader import ChildUploader, UploadFailed

    env_endpoint = f"http://127.0.0.1:{free_port()}"
    uploader = ChildUploader(nice=0)
    original = constants.ENDPOINT
    constants.ENDPOINT = env_endpoint
    try:
        request = {"repo_id": "org/x", "folder": str(tmp_path), "message": "m"}
        with pytest.raises(UploadFailed, match="unreachable"):  # one answer: the child is up, handlers set
            uploader.upload(request)
        process = uploader.start()
        process.send_signal(signal.SIGUSR1)
        process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert process.poll() is None, "the uploader died of a signal meant for the training process"
        with pytest.raises(UploadFailed, match="unreachable"):  # and it still answers
            uploader.upload(request)
        assert uploader.start() is process
    finally:
        constants.ENDPOINT = original
        uploader.close()
    assert process.poll() is not None
