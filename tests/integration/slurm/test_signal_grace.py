"""`reasoner signal-grace` on the real cluster: the ranks' grace after the warning is the time the job has left."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slurm


def signal_grace(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "REASONER_PREEMPT_GRACE"}
    return subprocess.run([sys.executable, "-m", "reasoner.cli", "signal-grace", *args], capture_output=True, text=True,
                          timeout=60, env={**environment, **env})


def wait_until_running(job_id: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True, timeout=30)
        if state.stdout.strip() == "RUNNING":
            return
        time.sleep(1)
    pytest.fail(f"job {job_id} did not start within {timeout:.0f} s")


def test_the_grace_follows_the_jobs_end_time(slurm_cluster):
    job = subprocess.run(["sbatch", "--parsable", "--time=5", "--output=/dev/null", "--wrap", "sleep 120"],
                         capture_output=True, text=True, timeout=60)
    assert job.returncode == 0, job.stderr
    job_id = job.stdout.strip().split(";")[0]
    try:
        wait_until_running(job_id)  # a pending job has no end time yet (the cluster may be busy with other jobs)
        result = signal_grace("--job", job_id, "--fallback", "7", "--needed", "400")
        assert result.returncode == 0, result.stderr
        grace = int(result.stdout)
        assert 200 <= grace <= 300 - 20, result.stderr  # a 5-minute limit from the job's start, less the 20 s exit
        lines = result.stderr.splitlines()
        assert any("the ranks get" in line for line in lines)
        assert any("needs ~400 s" in line and "sbatch --signal=B:USR1@420" in line for line in lines), result.stderr
        enough = signal_grace("--job", job_id, "--fallback", "7", "--needed", "30")
        assert "needs" not in enough.stderr
        assert signal_grace("--job", job_id, "--fallback", "7", REASONER_PREEMPT_GRACE="55").stdout.strip() == "55"
    finally:
        subprocess.run(["scancel", job_id], timeout=60)
    unknown = signal_grace("--job", "999999", "--fallback", "7")
    assert unknown.returncode == 0 and unknown.stdout.strip() == "7"
