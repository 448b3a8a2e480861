"""datasets and transformers, unchanged, in their own processes, through HF_ENDPOINT and HF_TOKEN."""

from __future__ import annotations

import json

import pytest

from reasoner_hub.auth import TokenBook
from reasoner_hub.server import HubServer

from .helpers import TOKENS, client_env, run_client


@pytest.fixture
def token_hub(storage):
    with HubServer(storage, tokens=TokenBook(TOKENS)) as hub:
        yield hub


def test_datasets_push_to_hub_and_load_dataset(token_hub, storage, tmp_path):
    env = client_env(token_hub.url, tmp_path / "home", HF_HUB_USER_AGENT_ORIGIN="datasets-client")
    result = run_client("datasets_roundtrip.py", ["org/gsm-mini"], env)
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen == {
        "rows": 40,
        "latest_rows": 1,
        "pinned_rows": 40,
        "files": [".gitattributes", "README.md", "data/train-00000-of-00001.parquet"],
    }
    parquet = token_hub.store.resolve(token_hub.store_repo("dataset", "org/gsm-mini"), "main").files[
        "data/train-00000-of-00001.parquet"
    ]
    assert parquet.lfs  # parquet goes through LFS, as on the Hub
    assert storage.exists("datasets/org/gsm-mini/data/train-00000-of-00001.parquet")
    # The client process is named in the metrics by the origin it puts in its user agent, uploads included.
    metrics = token_hub.metrics.snapshot()
    ours = metrics["by_client"]["datasets-client"]
    assert ours["bytes_received"] >= parquet.size and ours["bytes_sent"] > 0
    assert ours["requests"] == metrics["requests"]


def test_transformers_push_to_hub_and_from_pretrained(token_hub, storage, tmp_path):
    env = client_env(token_hub.url, tmp_path / "home", DS_ACCELERATOR="cpu")
    result = run_client("model_roundtrip.py", ["org/tiny-qwen2"], env)
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["same"] is True
    assert {"config.json", "model.safetensors", "generation_config.json"} <= set(seen["files"])
    assert seen["lfs"] == ["model.safetensors"]
    assert storage.exists("models/org/tiny-qwen2/model.safetensors")
