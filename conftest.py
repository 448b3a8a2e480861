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

import importlib.util
import os
from pathlib import Path

import pytest

STRICT = os.environ.get("CI", "").lower() not in ("", "0", "false")


UNIT_FOLDER = Path(__file__).resolve().parent / "tests" / "unit"
SLURM_FOLDER = Path(__file__).resolve().parent / "tests" / "integration" / "slurm"
SLURM_NODEIDS = "tests/integration/slurm/"


def work_unit(nodeid: str) -> str:
    """The unit of work one pytest-xdist worker takes whole: a test module, so its module-scoped fixtures (a
    trained run, a hub) are built once; and every SLURM test together, because they share one local cluster
    whose two nodes run one job at a time."""
    path = nodeid.split("::", 1)[0]
    return "slurm" if path.startswith(SLURM_NODEIDS) else path


if importlib.util.find_spec("xdist") is not None:  # make test runs on xdist workers (a dev extra)

    def pytest_xdist_make_scheduler(config, log):
        """Scheduling by ``work_unit``: xdist's own scope scheduling with the SLURM tests made one scope."""
        from xdist.scheduler import LoadScopeScheduling

        class ModuleScheduling(LoadScopeScheduling):
            def _split_scope(self, nodeid: str) -> str:
                return work_unit(nodeid)

        return ModuleScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    for item in items:
        unit = UNIT_FOLDER in Path(str(item.fspath)).resolve().parents
        item.add_marker(pytest.mark.unit if unit else pytest.mark.integration)
    # The SLURM tests first: they are the longest unit of work and mostly wait on the cluster, so under xdist
    # (make test keeps this order: --no-loadscope-reorder) they overlap the rest instead of running alone at the
    # end. The sort is stable.
    items.sort(key=lambda item: SLURM_FOLDER not in Path(str(item.fspath)).resolve().parents)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if STRICT and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI, where every prerequisite must be present: {reason}"
