"""reasoner's side of Xet: it leaves the upload protocol to the user, and its pushes check the hub offers Xet.

huggingface_hub uploads through Xet whenever hf_xet is installed. reasoner no longer sets
``HF_HUB_DISABLE_XET`` for private endpoints (its own hub speaks Xet); a hub that speaks only LFS is
found by the push preflight, which names the fix in one line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi, constants
from safetensors.torch import save_file

from reasoner.errors import UserError
from reasoner_hub.auth import Token
from reasoner_hub.server import HubServer
from reasoner.publish.checks import preflight_push
from reasoner.publish.xetcheck import check_xet_uploads

ROOT = Path(__file__).resolve().parents[2]
WRITE_TOKEN = "hf_xet_client_write_0123456789"
TOKENS = [Token("writer", WRITE_TOKEN, "write")]


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(PYTHONPATH=str(ROOT), NO_PROXY="*", no_proxy="*", **extra)
    return env


def _after_import(env: dict[str, str]) -> dict:
    code = ("import json, os, reasoner; from huggingface_hub import constants; "
            "print(json.dumps({'env': os.environ.get('HF_HUB_DISABLE_XET'), 'disabled': constants.HF_HUB_DISABLE_XET,"
            " 'telemetry': os.environ.get('HF_HUB_DISABLE_TELEMETRY')}))")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_reasoner_leaves_the_upload_protocol_to_the_user():
    private = _after_import(_clean_env(HF_ENDPOINT="https://hub.example.internal"))
    assert private == {"env": None, "disabled": False, "telemetry": "1"}
    chosen = _after_import(_clean_env(HF_ENDPOINT="https://hub.example.internal", HF_HUB_DISABLE_XET="1"))
    assert chosen["env"] == "1" and chosen["disabled"] is True


@pytest.fixture
def as_client(monkeypatch):
    """This process as a default client (Xet on) of whatever hub the test points it at."""
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", WRITE_TOKEN)

    def point(hub: HubServer) -> HfApi:
        monkeypatch.setattr(constants, "ENDPOINT", hub.url)
        return HfApi(endpoint=hub.url, token=WRITE_TOKEN)

    return point


def test_push_preflight_on_a_xet_hub_and_on_an_lfs_only_hub(tmp_path, as_client, monkeypatch):
    with HubServer(tmp_path / "xet", tokens=TOKENS) as hub:
        as_client(hub)
        preflight_push("org/run")  # creates the repo, then finds the Xet token route
        check_xet_uploads("org/run")
    with HubServer(tmp_path / "lfs", tokens=TOKENS, xet=False) as hub:
        as_client(hub)
        with pytest.raises(UserError, match="does not offer Xet uploads .*export HF_HUB_DISABLE_XET=1"):
            preflight_push("org/run")
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # the user's fix: uploads use LFS
        preflight_push("org/run")


def test_reasoner_push_uploads_through_xet_with_only_endpoint_and_token(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    save_file({"w": torch.randn(128, 256)}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text("{}\n")
    log = tmp_path / "requests.jsonl"
    with HubServer(tmp_path / "hub", tokens=TOKENS, request_log=str(log)) as hub:
        env = _clean_env(HF_ENDPOINT=hub.url, HF_TOKEN=WRITE_TOKEN, HF_HOME=str(tmp_path / "home"))
        result = subprocess.run([sys.executable, "-m", "reasoner.cli", "push", "--folder", str(folder),
                                 "--repo-id", "org/pushed"], env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        paths = [json.loads(line)["path"] for line in log.read_text().splitlines()]
        assert any(p.startswith("/_xet/v1/xorbs/") for p in paths)
        assert not any(p.startswith("/_lfs/") for p in paths)
        entry = hub.store.resolve(hub.store_repo("model", "org/pushed"), "main").files["model.safetensors"]
        assert hub.app.xet_store.file_hash_of(hub.store_repo("model", "org/pushed"), entry.sha256)
