"""LoRA as recipe data, end to end on CPU with the tiny model and a real hub over HTTP.

One run trains an adapter on a base model that lives on the embedded hub, pushes its checkpoints, the final
adapter and the merged model; a second run on a fresh machine resumes from the pushed checkpoint; ``reasoner
eval`` scores the pushed adapter from the hub with nothing local. The plain command (``reasoner train --recipe
tiny-cpu --max_steps 2 --peft.r 8 --output_dir D``) saves an adapter folder that ``reasoner eval --model D`` scores.
Two real ranks train adapters under DeepSpeed ZeRO-2 and ZeRO-3, and each is scored. Bad ``peft`` input is one
line, exit code 2 (tests/test_lora_recipe.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi, constants, snapshot_download
from safetensors.torch import load_file

from ports import free_port
from reasoner_hub.auth import Token
from reasoner_hub.server import HubServer
from training_run import TrainingRun, step_records

ROOT = Path(__file__).resolve().parents[2]
WRITE_TOKEN = "hf_lora_write_0123456789abcdef01"
TOKENS = [Token("trainer", WRITE_TOKEN, "write")]
BASE_REPO, ADAPTER_REPO = "org/tiny-base", "org/tiny-lora"


@pytest.fixture(autouse=True)
def _no_xet(monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def client_env(url: str, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "REASONER_"))}
    return {**env, "HF_ENDPOINT": url, "HF_TOKEN": WRITE_TOKEN, "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(home),
            "HF_HUB_DISABLE_PROGRESS_BARS": "1", "OMP_NUM_THREADS": "1", "NO_PROXY": "*", "no_proxy": "*"}


def train(out: Path, env: dict[str, str], *extra: str) -> TrainingRun:
    return TrainingRun(out, [sys.executable, "-m", "reasoner.cli", "train", "--recipe", "tiny-cpu",
                             "--model.id", BASE_REPO, "--peft.r", "8", "--output_dir", str(out), *extra], env)


@pytest.fixture(scope="module")
def hub_runs(tiny_model, tmp_path_factory):
    base = tmp_path_factory.mktemp("lora-hub")
    with HubServer(base / "bucket", tokens=TOKENS) as hub:
        api = HfApi(endpoint=hub.url, token=WRITE_TOKEN)
        api.create_repo(BASE_REPO)
        base_commit = api.upload_folder(repo_id=BASE_REPO, folder_path=str(tiny_model)).oid
        push = ["--hub.push", "true", "--hub.repo_id", ADAPTER_REPO, "--hub.push_checkpoints", "true",
                "--save_steps", "2"]
        first = train(base / "machine-a", client_env(hub.url, base / "home-a"), "--max_steps", "4",
                      "--peft.push_merged", "true", *push)
        first_rc = first.wait(600)
        files = set(api.list_repo_files(ADAPTER_REPO)) if first_rc == 0 else set()
        second = train(base / "machine-b", client_env(hub.url, base / "home-b"), "--max_steps", "6",
                       "--resume-from-hub", *push)
        second_rc = second.wait(600)
        results = base / "eval"
        evaluation = subprocess.run(
            [sys.executable, "-m", "reasoner.cli", "eval", "--model", ADAPTER_REPO, "--recipe", "tiny-cpu",
             "--limit", "3", "--max-new-tokens", "6", "--output", str(results)],
            cwd=ROOT, env=client_env(hub.url, base / "home-c"), capture_output=True, text=True, timeout=600)
        merged = Path(snapshot_download(ADAPTER_REPO, allow_patterns=["merged/*"], endpoint=hub.url,
                                        token=WRITE_TOKEN, cache_dir=base / "probe")) / "merged"
        yield {"first": first, "first_rc": first_rc, "second": second, "second_rc": second_rc, "files": files,
               "base_commit": base_commit, "eval": evaluation, "results": results, "merged": merged,
               "tiny": tiny_model}


def test_the_run_saves_an_adapter_that_names_its_pinned_base(hub_runs):
    assert hub_runs["first_rc"] == 0, hub_runs["first"].text()[-3000:]
    out = hub_runs["first"].out
    assert not (out / "model.safetensors").exists(), "a LoRA run saved a whole model, not an adapter"
    for folder in (out, out / "checkpoint-2", out / "checkpoint-4"):
        config = json.loads((folder / "adapter_config.json").read_text())
        assert config["base_model_name_or_path"] == BASE_REPO and config["revision"] == hub_runs["base_commit"]
        assert config["r"] == 8 and config["peft_type"] == "LORA"
    adapter = load_file(str(out / "adapter_model.safetensors"))
    trained_b = [name for name, t in adapter.items() if "lora_B" in name and t.abs().sum() > 0]
    assert adapter and len(trained_b) == sum("lora_B" in name for name in adapter), "lora_B (zero at start) did not train"


def test_adapter_checkpoints_and_merged_model_are_pushed_and_verified(hub_runs):
    files = hub_runs["files"]
    assert {"adapter_config.json", "adapter_model.safetensors", "last-checkpoint/adapter_model.safetensors",
            "last-checkpoint/trainer_state.json", "merged/model.safetensors", "merged/config.json",
            "merged/tokenizer_config.json"} <= files, sorted(files)
    assert "model.safetensors" not in files
    assert "final model pushed and verified" in hub_runs["first"].text()


def test_merged_model_is_the_base_plus_the_adapter(hub_runs):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(hub_runs["tiny"]), dtype=torch.float32)
    expected = PeftModel.from_pretrained(base, str(hub_runs["first"].out)).merge_and_unload().state_dict()
    merged = load_file(str(hub_runs["merged"] / "model.safetensors"))
    original = load_file(str(hub_runs["tiny"] / "model.safetensors"))
    changed = [name for name in merged if not torch.equal(merged[name], original[name])]
    assert changed and all(re.search(r"\.(q_proj|v_proj)\.weight$", name) for name in changed), changed
    for name, tensor in merged.items():
        torch.testing.assert_close(tensor, expected[name])


def test_a_fresh_machine_resumes_the_adapter_from_the_hub(hub_runs):
    assert hub_runs["second_rc"] == 0, hub_runs["second"].text()[-3000:]
    log = hub_runs["second"].text()
    assert f"fetched checkpoint step 4 of {ADAPTER_REPO}" in log
    assert [r["step"] for r in step_records(hub_runs["second"].out)] == [5, 6]
    assert (hub_runs["second"].out / "adapter_model.safetensors").is_file()


def test_reasoner_eval_scores_the_adapter_from_the_hub(hub_runs):
    result = hub_runs["eval"]
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    scores = json.loads(next(hub_runs["results"].rglob("results.json")).read_text())
    assert scores["model"] == ADAPTER_REPO and scores["commit"]
    assert scores["settings"]["adapter_base"] == {"id": BASE_REPO, "commit": hub_runs["base_commit"]}
    assert scores["n"] == 3 and "strict accuracy" in result.stdout


# -- one rank, the plain command: train an adapter into a folder, score the folder ------------------------
def cli_run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reasoner.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def local_run(tiny_model, tmp_path_factory):  # tiny_model: the builtin "tiny" is built before the run uses it
    base = tmp_path_factory.mktemp("lora-local")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    out, results = base / "D", base / "eval"
    trained = cli_run(["train", "--recipe", "tiny-cpu", "--max_steps", "2", "--peft.r", "8", "--output_dir", str(out)],
                      env)
    scored = cli_run(["eval", "--model", str(out), "--recipe", "tiny-cpu", "--limit", "2", "--max-new-tokens", "6",
                      "--output", str(results)], env)
    return {"out": out, "trained": trained, "scored": scored, "results": results}


def test_one_rank_adapter_folder_is_scored_by_reasoner_eval(local_run):
    trained, scored = local_run["trained"], local_run["scored"]
    assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr[-3000:]
    out = local_run["out"]
    assert (out / "adapter_model.safetensors").is_file() and not (out / "model.safetensors").exists()
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == "tiny"
    assert scored.returncode == 0, scored.stdout[-2000:] + scored.stderr[-3000:]
    scores = json.loads((local_run["results"] / "results.json").read_text())
    assert scores["model"] == str(out) and scores["n"] == 2
    assert scores["settings"]["adapter_base"] == {"id": "tiny", "commit": None}


# -- two real ranks ---------------------------------------------------------------------------------------
RANK_CONFIGS = ("cpu_zero2", "cpu_zero3")


@pytest.fixture(scope="module")
def ranked(tiny_model, tmp_path_factory):
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("ACCELERATE_USE_CPU", None)
    runs = {}
    for config in RANK_CONFIGS:
        out = tmp_path_factory.mktemp(config) / "out"
        command = [sys.executable, "-m", "accelerate.commands.accelerate_cli", "launch", "--config_file",
                   f"accelerate_configs/{config}.yaml", "--main_process_port", str(free_port()), "-m", "reasoner.train",
                   "--recipe", "tiny-cpu", "--model.id", str(tiny_model), "--peft.r", "8", "--max_steps", "2",
                   "--output_dir", str(out)]
        runs[config] = out, subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    return runs


@pytest.mark.parametrize("config", RANK_CONFIGS)
def test_two_ranks_train_one_adapter(ranked, config, tiny_model):
    out, result = ranked[config]
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    log = result.stdout + result.stderr
    assert len([line for line in log.splitlines() if "reasoner.train: step 2/2" in line]) == 1
    adapter = load_file(str(out / "adapter_model.safetensors"))
    assert adapter and all(t.numel() > 0 for t in adapter.values()), "an adapter tensor was saved as a ZeRO shard"
    assert any("lora_B" in name and t.abs().sum() > 0 for name, t in adapter.items())
    assert not (out / "model.safetensors").exists()
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny_model)


@pytest.mark.parametrize("config", RANK_CONFIGS)
def test_the_two_rank_adapter_is_scored_by_reasoner_eval(ranked, config, tiny_model, tmp_path):
    out, _ = ranked[config]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    scored = cli_run(["eval", "--model", str(out), "--recipe", "tiny-cpu", "--limit", "2", "--max-new-tokens", "4",
                      "--output", str(tmp_path)], env)
    assert scored.returncode == 0, scored.stdout[-2000:] + scored.stderr[-3000:]
    assert json.loads((tmp_path / "results.json").read_text())["settings"]["adapter_base"]["id"] == str(tiny_model)


def test_zero2_and_zero3_train_the_same_adapter(ranked):
    adapters = [load_file(str(ranked[config][0] / "adapter_model.safetensors")) for config in RANK_CONFIGS]
    assert adapters[0].keys() == adapters[1].keys()
    for name in adapters[0]:
        torch.testing.assert_close(adapters[0][name], adapters[1][name], atol=1e-5, rtol=1e-4)


def test_the_evaluated_model_is_the_base_with_the_trained_adapter_merged(ranked, tiny_model):
    """What ``reasoner eval`` loads for an adapter folder: its base with the adapter merged (the two-rank adapter,
    whose lora_B trained; a 2-step single-rank run on the tiny model can see equal rewards and no gradient)."""
    from reasoner.eval.models import load_model, resolve_model

    ref = resolve_model(str(ranked["cpu_zero3"][0]), None)
    assert ref.base is not None and ref.base.id == str(tiny_model)
    evaluated, base = load_model(ref, "cpu").state_dict(), load_model(ref.base, "cpu").state_dict()
    changed = [name for name in base if not torch.equal(evaluated[name], base[name])]
    assert changed and all(re.search(r"\.(q_proj|v_proj)\.weight$", name) for name in changed), changed
