"""Under CI a skipped test fails (the root conftest.py): a missing prerequisite cannot pass unnoticed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_one_skipping_test(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess:
    folder = tmp_path / "suite"
    folder.mkdir(parents=True)
    (folder / "conftest.py").write_text((ROOT / "conftest.py").read_text())
    (folder / "test_needs_a_thing.py").write_text(
        "import pytest\n\ndef test_needs_a_thing():\n    pytest.skip('the thing is not installed')\n")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", str(folder)],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=120)


def test_a_skip_fails_under_ci_and_names_its_reason(tmp_path):
    result = run_one_skipping_test(tmp_path, "true")
    assert result.returncode == 1, result.stdout
    assert "1 failed" in result.stdout
    assert "skipped under CI, where every prerequisite must be present" in result.stdout
    assert "the thing is not installed" in result.stdout


def test_a_skip_stays_a_skip_on_a_developers_machine(tmp_path):
    for ci in (None, "false", "0"):
        result = run_one_skipping_test(tmp_path / str(ci), ci)
        assert result.returncode == 0 and "1 skipped" in result.stdout, result.stdout
