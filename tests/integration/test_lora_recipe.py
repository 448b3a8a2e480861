"""The ``peft:`` section as data: refused input in one line (exit 2), and what the planner counts for an adapter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reasoner.errors import UserError
from reasoner.plan.estimate import estimate
from reasoner.plan.lora import adapter_params
from reasoner.plan.shapes import model_shape
from reasoner.recipe.load import load_recipe

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reasoner.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def one_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_an_unknown_peft_key_is_one_line_with_a_did_you_mean():
    line = one_line(cli("train", "--recipe", "tiny-cpu", "--peft.r", "8", "--peft.lora_alpah", "16", "--dry-run"))
    assert "peft.lora_alpah" in line and "did you mean 'peft.lora_alpha'" in line


def test_a_recipe_file_with_an_unknown_peft_key_is_refused(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("base: tiny-cpu\npeft: {r: 8, target_modulez: all-linear}\n")
    with pytest.raises(UserError, match="did you mean 'peft.target_modules'"):
        load_recipe(str(recipe))


@pytest.mark.parametrize("args, words", [
    (["--peft.lora_alpha", "16"], "peft.r is not"),
    (["--peft.r", "0"], "positive integer"),
    (["--peft.r", "8", "--peft.push_merged", "maybe"], "true/false"),
    (["--peft.r", "8", "--peft.base_model_name_or_path", "x"], "unknown recipe key 'peft.base_model_name_or_path'"),
    (["--peft.r", "8", "--sync_ref_model", "true"], "sync_ref_model cannot be used with LoRA"),
    (["--peft.r", "8", "--peft.bias", "sometimes"], "PEFT refused"),
])
def test_bad_peft_input_is_refused_before_anything_loads(args, words):
    with pytest.raises(UserError, match=words):
        load_recipe("tiny-cpu", args)


def test_peft_r_alone_turns_lora_on_and_no_section_leaves_it_off():
    assert load_recipe("tiny-cpu", ["--peft.r", "8"]).peft == {"r": 8}
    assert load_recipe("tiny-cpu").peft == {}


@pytest.mark.parametrize("peft", [{"r": 8}, {"r": 4, "target_modules": "all-linear"},
                                  {"r": 2, "target_modules": ["q_proj", "o_proj", "down_proj"]}])
def test_planned_adapter_size_is_what_peft_builds(tiny_model, peft):
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from reasoner.lora.config import build_lora_config

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(tiny_model)), build_lora_config(peft))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert adapter_params(model_shape(str(tiny_model)), peft) == trainable


def test_lora_plans_one_frozen_base_and_no_reference_model():
    full = estimate(load_recipe("qwen2.5-7b-gsm8k"), nodes=1, gpus_per_node=1, zero_stage=0, placement="colocate")
    lora = estimate(load_recipe("qwen2.5-7b-gsm8k", ["--peft.r", "16"]), nodes=1, gpus_per_node=1, zero_stage=0,
                    placement="colocate")
    names = {item.name: item.bytes for item in lora.training.items}
    assert "reference model" not in names and "reference model" in {item.name for item in full.training.items}
    params = lora.model.params
    assert 2 * params <= names["weights"] < 2.1 * params  # one bf16 base, plus a small float32 adapter
    assert names["optimizer states"] < 0.01 * params and lora.training.total < full.training.total / 2


def test_zero3_lora_with_vllm_counts_the_whole_model_gathered_for_the_weight_sync():
    recipe = load_recipe("qwen2.5-32b-lora")
    plan = estimate(recipe, nodes=1, gpus_per_node=8, zero_stage=3)
    item = next(i for i in plan.training.items if i.name == "gathered model (weight sync)")
    assert item.bytes >= 2 * plan.model.params * (1 - 1 / plan.training_ranks) - 1


@pytest.mark.parametrize("recipe", ["qwen2.5-7b-lora", "qwen2.5-32b-lora", "qwen2.5-7b-math"])
def test_new_recipes_fit_their_documented_allocation(recipe):
    result = cli("plan", "--recipe", recipe)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert "verdict: fits" in result.stdout


def test_lora_whose_weight_sync_cannot_fit_is_refused_in_one_line():
    line = one_line(cli("plan", "--recipe", "qwen2.5-32b-lora", "--generation.placement", "colocate",
                        "--accelerate_config", "accelerate_configs/zero3.yaml", "--generation.gpu_memory_utilization", "0.3",
                        "--generation.tensor_parallel_size", "1"))  # one GPU per engine: the planner may not shard it
    assert "does not fit" in line


def test_math_recipe_has_the_long_sequence_settings():
    recipe = load_recipe("qwen2.5-7b-math")
    assert recipe.grpo["max_completion_length"] >= 2048 and recipe.grpo["loss_type"] in ("dapo", "dr_grpo")
    assert recipe.grpo["mask_truncated_completions"] is True and recipe.answer.format == "math"
    assert recipe.reward_args["get_soft_overlong_punishment"]["max_completion_len"] == recipe.grpo["max_completion_length"]
    result = cli("plan", "--recipe", "qwen2.5-7b-math")
    total = recipe.dataset.max_prompt_tokens + recipe.grpo["max_completion_length"]
    assert f"--max-model-len {total}" in result.stdout
