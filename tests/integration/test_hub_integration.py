"""A whole run through a hub on a real object store, chosen by HF_ENDPOINT and HF_TOKEN alone.

The hub holds a model and real GSM8K rows in a SeaweedFS bucket; ``reasoner train`` pins, downloads, trains and
pushes through it; the pushed model is loaded back with ``from_pretrained`` through the hub, and the objects are
listed with a plain S3 client under ``models/<org>/<name>/``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from reasoner_hub.auth import Token
from reasoner_hub.server import HubServer
from hub_testkit.seaweed import SeaweedFS, find_weed
from shared_data import GSM8K

WRITE_TOKEN = "hf_integration_write_token_0123456789"
pytestmark = pytest.mark.s3


def client_env(url: str, home: Path, *, plain_client: bool = True) -> dict[str, str]:
    """A user's environment: the hub and the token. The seeding and checking clients use LFS
    (``HF_HUB_DISABLE_XET=1``); the ``reasoner`` run gets only HF_ENDPOINT and HF_TOKEN, so its pushes
    take huggingface_hub's default, Xet, which this hub speaks."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE"))}
    env.update(HF_ENDPOINT=url, HF_TOKEN=WRITE_TOKEN, HF_HOME=str(home))
    if plain_client:
        env["HF_HUB_DISABLE_XET"] = "1"
    return env


def run_python(code: str, env: dict[str, str]) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def s3_hub(tmp_path_factory):
    try:
        find_weed()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    with SeaweedFS(bucket="hub") as s3:
        log = tmp_path_factory.mktemp("log") / "requests.jsonl"
        with HubServer(s3.storage(), tokens=[Token("ci", WRITE_TOKEN, "write")], request_log=str(log)) as server:
            yield s3, server, log


@pytest.fixture(scope="module")
def trained(s3_hub, tmp_path_factory):
    s3, server, log = s3_hub
    work = tmp_path_factory.mktemp("work")
    env = client_env(server.url, work / "seed-home")
    from reasoner.models.tiny import ensure_tiny_model

    run_python(f"""
        from huggingface_hub import HfApi
        from datasets import load_dataset
        api = HfApi()
        api.create_repo("acme/tiny-base")
        api.upload_folder(repo_id="acme/tiny-base", folder_path={str(ensure_tiny_model())!r})
        for split in ("train", "test"):
            rows = load_dataset("json", data_files={str(GSM8K)!r} + f"/{{split}}.jsonl", split="train")
            rows.select(range(64)).push_to_hub("acme/gsm8k", config_name="main", split=split)
    """, env)
    out = work / "run"
    train_env = client_env(server.url, work / "train-home", plain_client=False)
    result = subprocess.run(
        [sys.executable, "-m", "reasoner.cli", "train", "--recipe", "tiny-cpu", "--model.id", "acme/tiny-base",
         "--dataset.id", "acme/gsm8k", "--dataset.config", "main", "--hub.push", "true",
         "--hub.repo_id", "acme/tiny-grpo", "--hub.push_checkpoints", "true", "--max_steps", "2", "--save_steps", "1",
         "--output_dir", str(out)],
        env=train_env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return s3, server, log, work, out, result


def test_pushed_model_loads_back_from_the_hub(trained):
    _s3, server, _log, work, _out, _result = trained
    stdout = run_python("""
        from transformers import AutoModelForCausalLM, AutoTokenizer
        model = AutoModelForCausalLM.from_pretrained("acme/tiny-grpo")
        tokenizer = AutoTokenizer.from_pretrained("acme/tiny-grpo")
        print(model.config.model_type, len(tokenizer))
    """, client_env(server.url, work / "load-home"))
    assert stdout.split()[0] == "qwen2"


def test_objects_are_in_the_bucket_under_models_org_name(trained):
    s3, _server, _log, _work, _out, _result = trained
    listing = s3.client().list_objects_v2(Bucket="hub", Prefix="models/acme/tiny-grpo/")
    keys = {obj["Key"] for obj in listing.get("Contents", [])}
    for name in ("config.json", "model.safetensors", "README.md", "tokenizer.json"):
        assert f"models/acme/tiny-grpo/{name}" in keys, sorted(keys)[:20]
    assert any(k.startswith("models/acme/tiny-grpo/last-checkpoint/") for k in keys)
    assert any(k.startswith("datasets/acme/gsm8k/") for k in {o["Key"] for o in s3.client().list_objects_v2(
        Bucket="hub", Prefix="datasets/acme/gsm8k/").get("Contents", [])})


def test_model_card_records_recipe_commits_and_host(trained):
    _s3, server, _log, work, _out, _result = trained
    stdout = run_python("""
        import json
        from huggingface_hub import HfApi, hf_hub_download
        api = HfApi()
        card = open(hf_hub_download("acme/tiny-grpo", "README.md")).read()
        print(json.dumps({"card": card, "model": api.model_info("acme/tiny-base").sha,
                          "data": api.dataset_info("acme/gsm8k").sha}))
    """, client_env(server.url, work / "card-home"))
    info = json.loads(stdout)
    card = info["card"]
    assert info["model"] in card and info["data"] in card
    assert server.url.split("://")[1] in card
    assert "base_model: acme/tiny-base" in card and "## Recipe" in card and "name: tiny-cpu" in card


def test_one_commit_per_save_plus_the_final_model(trained):
    _s3, server, _log, work, _out, _result = trained
    stdout = run_python("""
        from huggingface_hub import HfApi
        for commit in HfApi().list_repo_commits("acme/tiny-grpo"):
            print(commit.title)
    """, client_env(server.url, work / "commits-home"))
    titles = stdout.strip().splitlines()
    assert titles[0] == "final model"
    assert sorted(t for t in titles if t.startswith("checkpoint")) == ["checkpoint step 1", "checkpoint step 2"]


def test_the_run_pushed_through_xet_with_no_variable_set(trained):
    _s3, _server, log, _work, _out, _result = trained
    records = [json.loads(line) for line in log.read_text().splitlines()]
    pushed = [r for r in records if r.get("repo") == "models/acme/tiny-grpo"]
    assert any(r["path"].startswith("/_xet/v1/xorbs/") and r["status"] == 200 for r in pushed)
    assert not any(r["path"].startswith("/_lfs/") for r in pushed)


def records_after_seed(records: list[dict]) -> str:
    """The time of the last seeding upload: everything later is the training run (and the tests)."""
    return max(r["time"] for r in records if r["method"] == "POST" and "acme/gsm8k" in (r.get("repo") or ""))


def test_training_downloaded_each_file_once_and_pinned_commits(trained):
    _s3, _server, log, _work, _out, result = trained
    records = [json.loads(line) for line in log.read_text().splitlines()]
    train_agent = [r for r in records if r.get("repo") == "models/acme/tiny-base" and r["method"] == "GET"
                   and "/resolve/" in r["path"] and r["time"] > records_after_seed(records)]
    paths = [r["path"] for r in train_agent]
    assert paths, "training fetched nothing from the hub"
    assert len(paths) == len(set(paths)), "a model file was downloaded twice"
    # every download names the pinned commit, not a branch that could move during the run
    commit = paths[0].split("/resolve/")[1].split("/")[0]
    assert len(commit) == 40 and all(p.split("/resolve/")[1].startswith(commit) for p in paths)
    assert "Traceback" not in result.stderr
