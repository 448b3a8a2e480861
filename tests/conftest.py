"""Settings every test process shares.

The local hubs of the tests (``reasoner_hub``) speak both LFS and Xet. Most tests exercise the LFS
protocol, so ``HF_HUB_DISABLE_XET`` defaults to 1 here (``huggingface_hub`` reads it once, at import time,
so it is set before any test module imports it); the Xet tests (``hub/tests/test_xet*.py``,
``tests/integration/test_xet_client.py``) run their clients in processes whose environment does not carry it.
"""

import os
import shutil
import sys
from pathlib import Path

import pytest

# The hub's test-only helpers (hub_testkit: SeaweedFS, crash injection) are shared with these tests, never installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hub" / "tests" / "support"))
sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))  # the tests' helpers: ports, shared_data, ...

os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A private copy of the tiny model per test module, so a concurrent rebuild cannot change it between runs."""
    from reasoner.models.tiny import ensure_tiny_model

    target = tmp_path_factory.mktemp("model") / "tiny"
    shutil.copytree(ensure_tiny_model(), target)
    return target
