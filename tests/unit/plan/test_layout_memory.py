"""The memory estimate on the layout that really runs: overrides, the real GPU size, TRL's checkpointing default,
DeepSpeed's buffers, and rank zero's host memory when it gathers the model to save it."""

from __future__ import annotations

import pytest

from reasoner.plan import estimate, formulas, hardware, run, settings, shapes
from reasoner.recipe.load import load_recipe

GIB = formulas.GIB


def items(budget) -> dict[str, int]:
    return {item.name: item.bytes for item in budget.items}


def test_estimate_uses_the_layout_the_environment_gives():
    """REASONER_* overrides change the layout; the estimate follows it (it is no longer re-planned without them)."""
    recipe = load_recipe("qwen2.5-1.5b-gsm8k", ["--generation.placement", "dedicated-gpu"])  # the recipe's former layout
    plain = run.plan_run(recipe, env={}, nodes=1, gpus_per_node=8)
    assert plain.layout.placement == "dedicated-gpu" and plain.memory.training_ranks == 7
    colocated = run.plan_run(recipe, env={"REASONER_PLACEMENT": "colocate"}, nodes=1, gpus_per_node=8)
    assert colocated.layout.placement == colocated.memory.placement == "colocate"
    assert colocated.memory.training_ranks == 8 and "colocated vLLM" in items(colocated.memory.training)
    zero3 = run.plan_run(recipe, env={"REASONER_ACCELERATE_CONFIG": "accelerate_configs/zero3.yaml"}, nodes=1,
                         gpus_per_node=8)
    assert zero3.memory.zero_stage == 3 and plain.memory.zero_stage == 2
    assert zero3.memory.training.total < plain.memory.training.total


def test_the_servers_utilization_comes_from_its_command():
    recipe = load_recipe("qwen2.5-7b-gsm8k", ["--generation.gpu_memory_utilization", "0.5",
                                              "--generation.placement", "dedicated-node"])
    layout = run.plan_run(recipe, env={}, memory=False).layout
    assert "--gpu-memory-utilization" in layout.vllm_command
    plan = estimate.estimate_for_layout(recipe, layout, gpu_memory_gb=80)
    assert plan.generation.capacity == int(0.5 * 80 * GIB)


def test_this_machines_gpu_size_wins_over_the_recipes():
    recipe = load_recipe("qwen2.5-7b-gsm8k")
    machine = hardware.Machine(gpus=8, gpu_memory_gb=141.0, host_memory_gb=2000.0)
    here = run.plan_run(recipe, env={}, nodes=2, gpus_per_node=8, machine=machine)
    assert here.gpu_memory_gb == 141.0 and here.gpu_memory_source == "this machine's GPUs"
    assert here.memory.training.capacity == int(141 * GIB) and here.memory.host.capacity == int(2000 * GIB)
    given = run.plan_run(recipe, env={}, nodes=2, gpus_per_node=8, gpu_memory_gb=40.0, machine=machine)
    assert given.gpu_memory_gb == 40.0
    elsewhere = run.plan_run(recipe, env={}, nodes=2, gpus_per_node=8)
    assert elsewhere.gpu_memory_gb == 80 and elsewhere.memory.host.capacity is None


def test_gpu_and_host_memory_are_read_from_the_machine(tmp_path, monkeypatch):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24683568 kB\nMemFree:  1 kB\n")
    assert hardware.host_memory_gib(meminfo) == pytest.approx(24683568 / 2**20)
    found = hardware.this_machine({}, gpu_sizes=[81559 / 1024, 81920 / 1024])
    assert found.gpus == 2 and found.gpu_memory_gb == pytest.approx(81559 / 1024)
    overridden = hardware.this_machine({"REASONER_GPU_MEMORY_GB": "40GB", "REASONER_HOST_MEMORY_GB": "512"},
                                       gpu_sizes=[80.0])
    assert (overridden.gpu_memory_gb, overridden.host_memory_gb) == (40.0, 512.0)


def test_checkpointing_is_on_unless_the_recipe_turns_it_off():
    """TRL's GRPOConfig defaults gradient_checkpointing to True: a recipe that says nothing is checkpointed."""
    from trl import GRPOConfig

    assert GRPOConfig.__dataclass_fields__["gradient_checkpointing"].default is True
    assert settings.activation_checkpointing({}) is True
    assert settings.activation_checkpointing({"gradient_checkpointing": False}) is False
    assert settings.activation_checkpointing({"activation_checkpointing": False, "gradient_checkpointing": True}) is False
    silent = load_recipe("qwen2.5-0.5b-gsm8k", ["--activation_checkpointing", "null"])
    off = load_recipe("qwen2.5-0.5b-gsm8k", ["--activation_checkpointing", "false"])
    on_plan = estimate.estimate(silent, nodes=1, gpus_per_node=1)
    off_plan = estimate.estimate(off, nodes=1, gpus_per_node=1)
    assert on_plan.activation_checkpointing and not off_plan.activation_checkpointing
    assert items(on_plan.training)["activations"] < items(off_plan.training)["activations"]


@pytest.mark.parametrize("stage,expected", [(0, set()), (2, {"ZeRO reduce bucket"}),
                                            (3, {"ZeRO reduce bucket", "ZeRO live parameters", "ZeRO prefetch bucket"})])
def test_deepspeeds_buffers_are_counted(stage, expected):
    plan = estimate.estimate(load_recipe("qwen2.5-7b-gsm8k"), nodes=2, gpus_per_node=8, zero_stage=stage)
    found = {name for name in items(plan.training) if name.startswith("ZeRO ") and "gathered" not in name}
    assert found == expected
    if stage == 3:
        params = plan.model.params
        assert items(plan.training)["ZeRO live parameters"] == min(formulas.ZERO3_MAX_LIVE_PARAMETERS, params) * 2
        assert items(plan.training)["ZeRO reduce bucket"] == formulas.ZERO_REDUCE_BUCKET * 2


def test_rank_zero_gathers_the_whole_16bit_model_on_the_host_to_save():
    """ZeRO-3 saves a whole 16-bit model (zero3_save_16bit_model): rank zero holds it on the CPU, ~61 GiB for 32B."""
    # the generation node this recipe used to name: its host holds what the colocated layout's does
    recipe = load_recipe("qwen2.5-32b-gsm8k", ["--generation.placement", "dedicated-node",
                                               "--generation.tensor_parallel_size", "4",
                                               "--generation.gpu_memory_utilization", "0.9"])
    plan = estimate.estimate(recipe, nodes=8, gpus_per_node=8, host_memory_gb=64)
    saving = items(plan.host)["saving"]
    assert saving == 2 * shapes.table_shape("32b").params and saving / GIB > 60
    assert not plan.host.fits and not plan.fits  # 64 GiB of host memory cannot hold it beside 8 processes
    assert estimate.estimate(recipe, nodes=8, gpus_per_node=8, host_memory_gb=512).fits
    from reasoner.plan.search import refusal_of
    assert "host of rank 0's node" in refusal_of(recipe, plan) and "sbatch --mem" in refusal_of(recipe, plan)


def test_loading_without_zero3_holds_a_model_per_process_on_the_host():
    plan = estimate.estimate(load_recipe("qwen2.5-3b-gsm8k"), nodes=1, gpus_per_node=8)
    assert plan.zero_stage == 2
    assert items(plan.host)["loading"] == 7 * 2 * 2 * plan.model.params  # 7 processes x (policy + reference) x bf16
