"""Checkpoints per recipe: how many a run saves, how long one save takes, and whether the signal lead covers it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from reasoner.plan import checkpoints, run
from reasoner.recipe.load import load_recipe
from reasoner.recipe.files import packaged_recipes
from reasoner.recipe.sections import DatasetSection

ROOT = Path(__file__).resolve().parents[2]
QWEN = [name for name in packaged_recipes() if name.startswith("qwen2.5-")]


def stated(name: str, *overrides: str) -> run.RunPlan:
    recipe = load_recipe(name, list(overrides))
    resources = recipe.resources
    gpus = resources.gpus_per_node if recipe.generation.backend == "vllm" else 0
    return run.plan_run(recipe, env={}, nodes=resources.nodes, gpus_per_node=gpus)


def test_steps_are_counted_as_trl_consumes_prompts():
    """GSM8K's 7,473 rows at the old 14B and 32B batch shapes gave ~78 and ~34 steps an epoch."""
    grpo = {"per_device_train_batch_size": 4, "gradient_accumulation_steps": 16, "num_generations": 16,
            "num_train_epochs": 1}
    assert checkpoints.optimizer_steps(grpo, 7473, 24)[0] == 77
    grpo32 = {**grpo, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 32}
    assert checkpoints.optimizer_steps(grpo32, 7473, 56)[0] == 33
    assert checkpoints.optimizer_steps({**grpo, "max_steps": 12}, None, 24) == (12, "max_steps 12")
    assert checkpoints.optimizer_steps(grpo, None, 24)[0] is None
    assert checkpoints.dataset_rows(DatasetSection(id="openai/gsm8k", config="main", split="train")) == 7473
    assert checkpoints.dataset_rows(DatasetSection(id="generated", num_generated=64, limit=10)) == 10


def test_save_interval_follows_the_trainer():
    assert checkpoints.save_interval({"save_steps": 50}, 300) == 50
    assert checkpoints.save_interval({"save_steps": 0.1}, 300) == 30  # a fraction of the run
    assert checkpoints.save_interval({"save_strategy": "no"}, 300) is None
    assert checkpoints.save_interval({"save_strategy": "epoch", "num_train_epochs": 3}, 300) == 100


def test_zero3_checkpoint_of_32b_is_hundreds_of_gb():
    plan = stated("qwen2.5-32b-gsm8k")
    params = plan.memory.model.params
    layout = plan.layout
    total = 2 * params + 14 * params  # the gathered 16-bit model, then every rank's 16-bit and fp32 shards
    assert total / 1e9 > 450
    busiest = 2 * params + layout.processes_per_node * 14 * params / layout.num_processes
    assert plan.checkpoints.save_bytes == pytest.approx(busiest, rel=1e-6)


@pytest.mark.parametrize("name", QWEN)
def test_every_qwen_recipe_saves_often_enough_and_its_lead_covers_a_save(name):
    cp = stated(name).checkpoints
    assert cp.saves is not None and cp.saves >= checkpoints.MIN_SAVES, cp
    assert cp.lead_covers and cp.lead_s >= cp.lead_needed_s, cp
    assert cp.warnings == ()


def test_too_few_saves_and_a_short_lead_are_warned_with_the_fix():
    few = stated("qwen2.5-14b-gsm8k", "--save_steps", "1000").checkpoints
    assert few.saves == 0 and any("fewer than 4" in w and "set save_steps to" in w for w in few.warnings)
    short = stated("qwen2.5-32b-gsm8k", "--resources.signal_lead_s", "120").checkpoints
    assert not short.lead_covers
    [warning] = [w for w in short.warnings if "preemption signal" in w]
    needed = int(re.search(r"sbatch --signal=B:USR1@(\d+)", warning)[1])
    assert needed >= short.lead_needed_s and f"resources.signal_lead_s to {needed}" in warning
    slow_disk = stated("qwen2.5-7b-gsm8k", "--resources.checkpoint_write_gbps", "0.2").checkpoints
    assert not slow_disk.lead_covers  # ~610 s to write 122 GB at 0.2 GB/s


@pytest.mark.parametrize("name", packaged_recipes())
def test_reasoner_plan_prints_checkpoints_for_every_recipe_at_its_stated_layout(name):
    result = subprocess.run([sys.executable, "-m", "reasoner.cli", "plan", "--recipe", name], capture_output=True,
                            text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    match = re.search(r"^checkpoints: (\d+).* in (\d+) optimizer steps", out, re.M)
    assert match, out
    lead = re.search(r"signal lead: (\d+) s .* (covered|TOO SHORT)$", out, re.M)
    assert lead and lead[2] == "covered", out
    assert re.search(r"one save: [\d.,]+ GB on the busiest node, ~\d+ s", out)
    saves, steps = int(match[1]), int(match[2])
    if name in QWEN:
        assert saves >= checkpoints.MIN_SAVES and "warning:" not in out, out
    # Fewer saves than MIN_SAVES is warned about, unless the run is too short to save that often (a test run).
    assert ("warning: saves" in out) == (saves < checkpoints.MIN_SAVES <= steps), out


def test_reasoner_plan_warns_for_a_recipe_that_would_lose_its_checkpoint():
    result = subprocess.run([sys.executable, "-m", "reasoner.cli", "plan", "--recipe", "qwen2.5-32b-gsm8k",
                             "--resources.signal_lead_s", "120", "--save_steps", "500"],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr  # a warning, not a refusal
    assert "TOO SHORT" in result.stdout and "warning: saves 0 checkpoint(s)" in result.stdout
    assert "sbatch --signal=B:USR1@" in result.stdout
