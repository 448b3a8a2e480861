"""Fixtures for the hub tests: a real HubServer over HTTP on a folder or on SeaweedFS (S3).

In-process clients get the endpoint explicitly (``HfApi(endpoint=...)``, ``endpoint=`` on the
download functions); ``datasets`` and ``transformers`` run in subprocesses with ``HF_ENDPOINT`` in
their environment, as a user runs them. These tests speak the LFS protocol, so Xet is off in the
clients: ``HF_HUB_DISABLE_XET`` is read when huggingface_hub is imported, so it is set here and, in
case huggingface_hub was imported earlier, the module constant is patched too. The Xet protocol is
tested in test_xet*.py, with client processes that keep huggingface_hub's default (Xet on).
"""

from __future__ import annotations

import os

os.environ["HF_HUB_DISABLE_XET"] = "1"

import sys  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

# The test-only helpers (SeaweedFS, crash injection) live in hub/tests/support, never in the installed package.
sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))

import pytest  # noqa: E402
from huggingface_hub import HfApi, constants  # noqa: E402

from reasoner_hub.auth import TokenBook  # noqa: E402
from reasoner_hub.server import HubServer  # noqa: E402
from reasoner_hub.storage import LocalStorage  # noqa: E402

from hub_testkit.seaweed import INSTALL_HINT, SeaweedFS, find_weed  # noqa: E402

from .helpers import TOKENS, WRITE_TOKEN  # noqa: E402


@pytest.fixture(autouse=True)
def _client_settings(monkeypatch):
    """Xet off, online, no ambient token: every test states the token it uses."""
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def seaweedfs():
    """One SeaweedFS for the session; each test gets its own key prefix in its bucket."""
    try:
        find_weed()
    except RuntimeError:
        pytest.fail(f"the S3 tests need SeaweedFS: install it with `{INSTALL_HINT}`", pytrace=False)
    with SeaweedFS(bucket="localhub-tests") as store:
        yield store


def make_storage(kind: str, tmp_path: Path, request):
    if kind == "folder":
        return LocalStorage(tmp_path / "bucket")
    seaweed = request.getfixturevalue("seaweedfs")
    return seaweed.storage(prefix=f"t-{uuid.uuid4().hex[:12]}")


BACKENDS = ["folder", pytest.param("s3", marks=pytest.mark.s3)]


@pytest.fixture(params=BACKENDS)
def storage(request, tmp_path):
    """The storage under test: a folder, or a prefix of a SeaweedFS bucket."""
    return make_storage(request.param, tmp_path, request)


@pytest.fixture
def folder_storage(tmp_path):
    return LocalStorage(tmp_path / "bucket")


@pytest.fixture
def hub(storage):
    """An open (no tokens) hub on the parametrized storage."""
    with HubServer(storage) as server:
        yield server


@pytest.fixture
def folder_hub(folder_storage):
    with HubServer(folder_storage) as server:
        yield server


@pytest.fixture
def secure_hub(folder_storage):
    """A hub enforcing tokens (writer: write, reader: read)."""
    with HubServer(folder_storage, tokens=TokenBook(TOKENS)) as server:
        yield server


@pytest.fixture
def api(hub) -> HfApi:
    return HfApi(endpoint=hub.url, token=WRITE_TOKEN)


@pytest.fixture
def folder_api(folder_hub) -> HfApi:
    return HfApi(endpoint=folder_hub.url, token=WRITE_TOKEN)
