"""Two rules for the whole suite (trainer and hub).

Tiers: a test under ``tests/unit/`` is marked ``unit`` (pure functions: no processes, servers or network;
``make test-unit``), every other test ``integration`` (hub over HTTP, S3, ranks, SLURM, real training).

Under CI a skipped test is a failed test.

A skip means a prerequisite was missing (the shared GSM8K rows, root for a tmpfs, a binary). On a
developer's machine that is worth a line in the summary; in CI it would hide exactly the missing install
step CI exists to catch, so with ``CI`` set (``.ci/run`` sets it) every skip is reported as a failure that
names its reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

STRICT = os.environ.get("CI", "").lower() not in ("", "0", "false")


UNIT_FOLDER = Path(__file__).resolve().parent / "tests" / "unit"


def pytest_collection_modifyitems(config, items):
    for item in items:
        unit = UNIT_FOLDER in Path(str(item.fspath)).resolve().parents
        item.add_marker(pytest.mark.unit if unit else pytest.mark.integration)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if STRICT and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI, where every prerequisite must be present: {reason}"
