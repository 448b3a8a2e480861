"""Preemption on the real cluster: the warning signal checkpoints, requeues, and the job resumes and completes.

SLURM sends ``--signal=B:USR1@120`` to the batch shell before a time limit or a preemption; here the test
sends the same signal with ``scancel --signal=USR1 --batch``. The batch shell forwards it to the training
step, the ranks save a checkpoint at the next step and exit, the job requeues itself, and the second run
resumes from that checkpoint to the last step. SLURM delays a requeued job by about two minutes; the
test moves its start time to now, as an operator would.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ports import free_port

pytestmark = pytest.mark.slurm

ROOT = Path(__file__).resolve().parents[3]
STEPS = 30


def job_field(job_id: str, field: str) -> str:
    text = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True, timeout=30).stdout
    match = re.search(rf"\b{field}=(\S+)", text)
    return match[1] if match else ""


def wait_for(predicate, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    tail = log.read_text()[-4000:] if log.exists() else "(no job output)"
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{tail}")


def submit_tiny_job(slurm_cluster: str, tmp_path: Path) -> tuple[str, Path, Path]:
    """sbatch the two-node tiny-cpu job (offline, saving only on a signal); its id, output folder and log."""
    out_dir, log = tmp_path / "run", tmp_path / "job.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(SLURM_CONF=slurm_cluster, REASONER_PYTHON=sys.executable, REASONER_CACHE_DIR=str(tmp_path / "cache"),
               REASONER_LOG_DIR=str(tmp_path / "logs"), REASONER_MAIN_PORT=str(free_port()), HF_HUB_OFFLINE="1",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    submit = subprocess.run(
        ["sbatch", "--parsable", "--nodes=2", f"--output={log}", "--time=20", "slurm/grpo.sbatch", "tiny-cpu",
         "--max_steps", str(STEPS), "--save_steps", "1000", "--output_dir", str(out_dir)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert submit.returncode == 0, submit.stderr
    return submit.stdout.strip().split(";")[0], out_dir, log


def test_preempted_job_checkpoints_requeues_and_resumes(slurm_cluster, tmp_path):
    job_id, out_dir, log = submit_tiny_job(slurm_cluster, tmp_path)
    try:
        wait_for(lambda: log.exists() and f"step 3/{STEPS}" in log.read_text(), 300, "step 3", log)
        subprocess.run(["scancel", "--signal=USR1", "--batch", job_id], check=True, timeout=30)
        wait_for(lambda: job_field(job_id, "Restarts") == "1" and job_field(job_id, "JobState") == "PENDING",
                 180, "the requeue", log)
        # The requeue revokes the first run's credential; slurmd refuses a start within the same second
        # ("Job credential revoked"), so the operator's StartTime=now comes a moment later.
        time.sleep(2)
        subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], check=True, timeout=30)
        wait_for(lambda: job_field(job_id, "JobState") in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"),
                 420, "the resumed run to finish", log)
    finally:
        if job_field(job_id, "JobState") in ("PENDING", "RUNNING", "REQUEUED"):
            subprocess.run(["scancel", job_id], timeout=30)

    text = log.read_text()
    assert job_field(job_id, "JobState") == "COMPLETED", text[-4000:]
    saved = re.search(r"preemption signal: saving a checkpoint at step (\d+)", text)
    assert saved, text[-4000:]
    step = int(saved[1])
    assert 3 <= step < STEPS
    assert f"requeueing job {job_id}" in text and "(restart 1)" in text
    assert f"resuming from {out_dir}/checkpoint-{step}" in text
    assert f"step {STEPS}/{STEPS}" in text
    state = json.loads((out_dir / f"checkpoint-{step}" / "trainer_state.json").read_text())
    assert state["global_step"] == step
    assert (out_dir / "model.safetensors").is_file()


@pytest.mark.parametrize("how", [
    ["--full", "--signal=TERM"],  # the batch shell and every step: what a time limit or a TERM preemption sends
    ["--signal=TERM"],  # the steps only: the ranks see SIGTERM, the batch shell no signal
    [],  # scancel: the job is cancelled, SIGTERM first and SIGKILL after KillWait
], ids=["term-job", "term-steps", "scancel"])
def test_sigterm_checkpoints_and_stops_without_requeue(slurm_cluster, tmp_path, how):
    job_id, out_dir, log = submit_tiny_job(slurm_cluster, tmp_path)
    try:
        wait_for(lambda: log.exists() and f"step 3/{STEPS}" in log.read_text(), 300, "step 3", log)
        subprocess.run(["scancel", *how, job_id], check=True, timeout=30)
        wait_for(lambda: job_field(job_id, "JobState") in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"),
                 180, "the job to end", log)
        time.sleep(3)  # a requeue, were there one, shows by now
    finally:
        if job_field(job_id, "JobState") in ("PENDING", "RUNNING", "REQUEUED"):
            subprocess.run(["scancel", job_id], timeout=30)

    text = log.read_text()
    assert job_field(job_id, "Restarts") == "0" and job_field(job_id, "JobState") != "PENDING", text[-4000:]
    assert "requeueing job" not in text
    saved = re.search(r"preemption signal: saving a checkpoint at step (\d+)", text)
    assert saved, text[-4000:]
    step = int(saved[1])
    assert 3 <= step < STEPS
    state = json.loads((out_dir / f"checkpoint-{step}" / "trainer_state.json").read_text())
    assert state["global_step"] == step
    assert not (out_dir / "model.safetensors").exists(), "the run went on to the end instead of stopping"
    if how:  # the job script lived to decide: it names the saved checkpoint and why it does not requeue
        assert f"checkpoint-{step} (step {step}) saved" in text and "not requeueing" in text, text[-3000:]
