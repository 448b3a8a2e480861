"""A real two-node SLURM cluster on this machine, for tests (started by .ci/slurm-up.sh).

The fixture fails, never skips, when SLURM is missing: a silently skipped cluster test would let a broken
``slurm/grpo.sbatch`` pass CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
UP_SCRIPT = ROOT / ".ci" / "slurm-up.sh"
INSTALL = "apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge"
DAEMONS = ("slurmctld", "slurmd", "munged", "sbatch", "sinfo", "scontrol")


def _missing() -> list[str]:
    return [tool for tool in DAEMONS if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists()]


def start_cluster() -> str:
    """Start (or find running) the local cluster; return its SLURM_CONF path."""
    missing = _missing()
    if missing:
        pytest.fail(f"SLURM is not installed ({', '.join(missing)} missing): {INSTALL}")
    result = subprocess.run(["bash", str(UP_SCRIPT)], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        pytest.fail(f".ci/slurm-up.sh failed (exit {result.returncode}):\n{result.stderr}")
    line = next((l for l in result.stdout.splitlines() if l.startswith("export SLURM_CONF=")), None)
    if line is None:
        pytest.fail(f".ci/slurm-up.sh printed no SLURM_CONF line:\n{result.stdout}\n{result.stderr}")
    return line.split("=", 1)[1].strip()


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[str]:
    """SLURM_CONF of a running two-node cluster (n1, n2 on 127.0.0.1); exported for the session."""
    conf = start_cluster()
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = conf
    try:
        yield conf
    finally:
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
