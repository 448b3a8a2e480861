"""Float32 master weights with bf16 compute unless a recipe opts out, checked on the model TRL really loads.

The parameters are read from a real ``GRPOTrainer`` built from the recipe (the same call ``reasoner train``
makes) and from the weights and optimizer state a real CPU run saves.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from safetensors.torch import load_file

from reasoner.train.precision import load_dtype
from reasoner.recipe.load import load_recipe
from reasoner.recipe.sections import ModelSection
from reasoner.train.run import build_grpo_config

ROOT = Path(__file__).resolve().parents[2]
BF16_RECIPE = ["--model.dtype", "bfloat16", "--bf16", "true"]  # a bf16 recipe, as the Qwen recipes are


def loaded_dtypes(tiny_model: Path, tmp_path: Path, overrides: list[str]) -> set[torch.dtype]:
    from transformers import AutoTokenizer
    from trl import GRPOTrainer

    from reasoner.rewards import get_reward_funcs

    recipe = load_recipe("tiny-cpu", ["--model.id", str(tiny_model), "--output_dir", str(tmp_path / "out"), *overrides])
    trainer = GRPOTrainer(model=str(tiny_model), reward_funcs=get_reward_funcs(recipe.rewards), args=build_grpo_config(recipe),
                          train_dataset=Dataset.from_list([{"prompt": "What is 2 + 2?"}] * 4),
                          processing_class=AutoTokenizer.from_pretrained(tiny_model))
    return {parameter.dtype for parameter in trainer.model.parameters()}


def test_a_bf16_recipe_without_deepspeed_trains_float32_weights(tiny_model, tmp_path, monkeypatch):
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED", raising=False)
    assert loaded_dtypes(tiny_model, tmp_path, BF16_RECIPE) == {torch.float32}


def test_opting_out_trains_the_weights_in_model_dtype(tiny_model, tmp_path, monkeypatch):
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED", raising=False)
    assert loaded_dtypes(tiny_model, tmp_path, [*BF16_RECIPE, "--model.fp32_master_weights", "false"]) == {torch.bfloat16}


def test_deepspeed_loads_model_dtype_because_it_keeps_its_own_fp32_copy():
    model = ModelSection(dtype="bfloat16", fp32_master_weights=True)
    assert load_dtype(model, deepspeed=True) == "bfloat16"
    assert load_dtype(model, deepspeed=False) == "float32"
    assert load_dtype(dataclasses.replace(model, fp32_master_weights=False), deepspeed=False) == "bfloat16"
    assert load_dtype(ModelSection(dtype="auto", fp32_master_weights=True), deepspeed=False) == "float32"


def test_the_config_follows_the_launcher_and_the_recipe(monkeypatch):
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED", raising=False)
    recipe = load_recipe("qwen2.5-0.5b-gsm8k", ["--generation.backend", "transformers"])
    assert recipe.model.dtype == "bfloat16" and recipe.model.fp32_master_weights is True
    assert recipe.grpo["bf16"] is True
    assert build_grpo_config(recipe).model_init_kwargs["dtype"] == "float32"
    assert load_recipe("tiny-cpu").model.fp32_master_weights is True  # the schema default


def run_one_step(tiny_model: Path, out: Path, overrides: list[str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "reasoner.train", "--recipe", "tiny-cpu", "--model.id", str(tiny_model),
               "--max_steps", "1", "--save_steps", "1", "--output_dir", str(out), *BF16_RECIPE, *overrides]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(("overrides", "expected"), [([], torch.float32),
                                                     (["--model.fp32_master_weights", "false"], torch.bfloat16)])
def test_a_real_run_saves_weights_and_adam_state_in_the_master_dtype(tiny_model, tmp_path, overrides, expected):
    out = tmp_path / "out"
    result = run_one_step(tiny_model, out, overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    assert {t.dtype for t in load_file(str(out / "model.safetensors")).values()} == {expected}
    optimizer = torch.load(out / "checkpoint-1" / "optimizer.pt", weights_only=True)
    moments = {value.dtype for state in optimizer["state"].values() for key, value in state.items() if key.startswith("exp_avg")}
    assert moments == {expected}
