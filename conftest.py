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
SLURM_FOLDER = Path(__file__).resolve().parent / "tests" / "integration" / "slurm"


def xdist_group(path: Path) -> str:
    """The unit of work a pytest-xdist worker takes whole (``--dist loadgroup``): a test module, so its
    module-scoped fixtures (a trained run, a hub) are built once; and every SLURM test together, because they
    share one local cluster whose two nodes run one job at a time."""
    return "slurm" if SLURM_FOLDER in path.parents else str(path)


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = Path(str(item.fspath)).resolve()
        item.add_marker(pytest.mark.unit if UNIT_FOLDER in path.parents else pytest.mark.integration)
        item.add_marker(pytest.mark.xdist_group(xdist_group(path)))
    # The SLURM tests first: they are the longest unit of work and mostly wait on the cluster, so under
    # xdist they overlap everything else instead of running alone at the end (the sort is stable).
    items.sort(key=lambda item: xdist_group(Path(str(item.fspath)).resolve()) != "slurm")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if STRICT and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI, where every prerequisite must be present: {reason}"
