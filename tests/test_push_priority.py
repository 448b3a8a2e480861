"""The background push yields the CPU to training: its thread runs at a lower priority than the loop."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

from reasoner.errors import UserError
from reasoner.push import HubPusher, PushJob, PushPolicy, lower_this_thread_priority

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's")


def niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_only_the_calling_thread_is_lowered():
    before = niceness()
    seen: dict[str, int | None] = {}

    def worker() -> None:
        seen["returned"] = lower_this_thread_priority(3)
        seen["thread"] = niceness()
        child = threading.Thread(target=lambda: seen.__setitem__("child", niceness()))
        child.start()
        child.join()

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    expected = min(19, before + 3)
    assert seen == {"returned": expected, "thread": expected, "child": expected}
    assert niceness() == before, "the training thread's priority changed"


def test_zero_leaves_the_priority_alone():
    assert lower_this_thread_priority(0) is None


class RecordingPusher(HubPusher):
    """A pusher whose upload records the priority it ran at instead of sending anything."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.upload_niceness: list[int] = []

    def _upload(self, job: PushJob) -> None:
        self.upload_niceness.append(niceness())


def test_pushes_run_below_the_training_loop(tmp_path: Path):
    folder = tmp_path / "checkpoint-1"
    folder.mkdir()
    pusher = RecordingPusher("org/model", policy=PushPolicy(attempts=1, nice=5))
    pusher.submit(PushJob(folder=folder, path_in_repo="last-checkpoint", message="checkpoint step 1", step=1))
    assert pusher.drain(timeout=30)
    assert pusher.upload_niceness == [min(19, niceness() + 5)]
    assert [job.message for job in pusher.pushed] == ["checkpoint step 1"]


def test_push_nice_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("REASONER_PUSH_NICE", "4")
    assert PushPolicy().nice == 4
    monkeypatch.setenv("REASONER_PUSH_NICE", "low")
    with pytest.raises(UserError, match="REASONER_PUSH_NICE='low' is not valid"):
        PushPolicy()
