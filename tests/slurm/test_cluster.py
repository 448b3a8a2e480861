"""The local cluster really schedules across its two nodes (the ground the sbatch test stands on)."""

from __future__ import annotations

import subprocess

import pytest

pytestmark = pytest.mark.slurm


def test_two_nodes_idle_and_a_job_spans_both(slurm_cluster, tmp_path):
    nodes = subprocess.run(["sinfo", "-h", "-N", "-o", "%N"], capture_output=True, text=True, timeout=30).stdout.split()
    assert sorted(set(nodes)) == ["n1", "n2"]
    out = subprocess.run(
        ["srun", "--nodes=2", "--ntasks-per-node=1", "bash", "-c", 'echo "$SLURM_NODEID $SLURMD_NODENAME"'],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert sorted(out.stdout.split("\n")[:2]) == ["0 n1", "1 n2"]
