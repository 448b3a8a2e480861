"""A ``reasoner train`` process running in the background, for tests that act on a run mid-way
(signals, a hub that goes away): start it, wait for a step in its own metrics log, wait for its exit."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Sequence

import pytest

ROOT = Path(__file__).resolve().parents[2]


def step_records(out: Path) -> list[dict]:
    """The logged training steps of a run so far (a line being written right now is skipped)."""
    path = out / "metrics.jsonl"
    records = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if "reward" in record:
            records.append(record)
    return records


class TrainingRun:
    """One training process writing to ``out``, its output captured to a log file beside it."""

    def __init__(self, out: Path, command: Sequence[str], env: dict[str, str]) -> None:
        self.out = out
        out.parent.mkdir(parents=True, exist_ok=True)
        self.log = out.parent / f"{out.name}.{uuid.uuid4().hex[:6]}.log"
        with self.log.open("w") as fh:
            self.process = subprocess.Popen(list(command), cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, timeout: float = 300) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"run in {self.out} did not finish in {timeout:.0f} s:\n{self.text()[-3000:]}")

    def wait_for_step(self, step: int, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(r["step"] >= step for r in step_records(self.out)):
                return
            if self.process.poll() is not None:
                pytest.fail(f"run exited with {self.process.returncode} before step {step}:\n{self.text()[-3000:]}")
            time.sleep(0.05)
        pytest.fail(f"run in {self.out} did not reach step {step} in {timeout:.0f} s")


def rank_pids(launcher_pid: int) -> dict[int, int]:
    """RANK -> pid of the training processes a launcher started (its children with RANK set)."""
    found: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            status = (entry / "status").read_text()
        except OSError:
            continue
        variables = dict(item.split(b"=", 1) for item in environ if b"=" in item)
        ppid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
        if b"RANK" in variables and b"LOCAL_RANK" in variables and ppid == launcher_pid:
            found[int(variables[b"RANK"])] = int(entry.name)
    return found
