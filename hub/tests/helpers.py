"""Helpers shared by the hub tests (constants, client environments, client subprocesses)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reasoner_hub.auth import Token

REPO_ROOT = Path(__file__).resolve().parents[2]
HUB_ROOT = REPO_ROOT / "hub"  # first on a subprocess's path: the hub of this checkout, never an installed one
WRITE_TOKEN = "hf_localhub_write_0123456789"
READ_TOKEN = "hf_localhub_read_0123456789"
TOKENS = [Token("writer", WRITE_TOKEN, "write"), Token("reader", READ_TOKEN, "read")]


def client_env(
    endpoint: str, home: Path, token: str | None = WRITE_TOKEN, xet: bool = False, **extra: str
) -> dict[str, str]:
    """Environment of a client process pointed at ``endpoint`` (what a user exports).

    ``xet=False`` adds ``HF_HUB_DISABLE_XET=1`` (the LFS protocol); ``xet=True`` leaves the client's
    default, which uploads and downloads through Xet since ``hf_xet`` is installed.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "TRANSFORMERS_"))}
    if not xet:
        env["HF_HUB_DISABLE_XET"] = "1"
    env.update(
        HF_ENDPOINT=endpoint,
        HF_HOME=str(home),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        PYTHONPATH=str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
        NO_PROXY="*",
        no_proxy="*",
        **extra,
    )
    if token:
        env["HF_TOKEN"] = token
    return env


def run_client(script: str, args: list[str], env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess:
    """Run one of the client scripts beside this file; fail the test with its output if it fails."""
    path = Path(__file__).parent / "clients" / script
    result = subprocess.run(
        [sys.executable, str(path), *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        pytest.fail(f"{script} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
    return result


def raw_request(
    base_url: str, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """Send ``path`` exactly as written (no client-side normalisation); header names come back lower-case."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()
