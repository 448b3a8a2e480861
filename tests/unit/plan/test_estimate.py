"""A recipe on a layout: verdicts, refusals, monotonicity, and every packaged recipe on the layout it declares."""

from __future__ import annotations

import os

import pytest

from reasoner.plan import estimate, report, search, settings
from reasoner.recipe.load import load_recipe
from reasoner.recipe.files import packaged_recipes
from qwen_recipes import qwen_recipe

os.environ.setdefault("DS_ACCELERATOR", "cpu")


def test_plan_model_states_equal_deepspeed_for_its_training_ranks():
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs

    recipe = qwen_recipe("7b", beta="0.0")
    plan = estimate.estimate(recipe, nodes=3, gpus_per_node=8, zero_stage=3)
    assert plan.placement == "dedicated-node" and plan.training_ranks == 16
    states = sum(i.bytes for i in plan.training.items
                 if i.name in ("weights", "gradients", "optimizer states", "ZeRO-3 gathered layer"))
    _, ds3, _ = estimate_zero3_model_states_mem_needs(plan.model.params, plan.model.largest_layer_params, 8, 2,
                                                      cpu_offload=False, cpu_offload_params=False)
    assert states == ds3


def test_reference_recipe_fits_one_80gb_gpu():
    plan = estimate.estimate(load_recipe("qwen2.5-0.5b-gsm8k"), nodes=1, gpus_per_node=1, gpu_memory_gb=80)
    assert plan.fits and plan.placement == "colocate" and plan.zero_stage == 0
    names = [i.name for i in plan.training.items]
    assert {"weights", "gradients", "optimizer states", "reference model", "activations", "colocated vLLM"} <= set(names)
    text = report.format_memory_plan(plan)
    assert "verdict: fits" in text and "headroom" in text and "GiB" in text


def test_32b_on_one_gpu_without_zero_is_refused():
    recipe = qwen_recipe("32b", **{"generation.placement": "colocate", "generation.tensor_parallel_size": "1"})
    plan = estimate.estimate(recipe, nodes=1, gpus_per_node=1, gpu_memory_gb=80, zero_stage=0)
    assert not plan.fits and plan.training.headroom < 0
    message = search.refusal(recipe, 1, 1, 80, zero_stage=0)
    assert message and "does not fit" in message and "smallest layout that fits" in message
    assert "does not fit" in report.memory_report(recipe, 1, 1, 80)


def test_layouts_topology_refuses_come_back_as_refusals():
    recipe = load_recipe("qwen2.5-0.5b-gsm8k")
    message = search.refusal(recipe, 1, 0, 80)  # vLLM without GPUs
    assert message and "vllm" in message.lower()


def test_vllm_queues_instead_of_failing_when_the_kv_cache_is_short():
    recipe = qwen_recipe("7b", per_device_train_batch_size="64", num_generations="16")
    plan = estimate.estimate(recipe, nodes=2, gpus_per_node=8, zero_stage=3, tensor_parallel_size=1)
    assert plan.generation is not None and plan.generation_queued and plan.generation.fits
    starved = estimate.estimate(qwen_recipe("0.5b", **{"generation.gpu_memory_utilization": "0.01"}), nodes=1,
                              gpus_per_node=1)
    assert starved.generation is not None and not starved.generation.fits and not starved.fits


def test_cpu_recipes_are_planned_per_process():
    plan = estimate.estimate(load_recipe("smollm2-cpu"), nodes=1, gpus_per_node=0)
    assert plan.backend == "transformers" and plan.generation is None and plan.training.capacity is None
    assert plan.fits
    small = estimate.estimate(load_recipe("smollm2-cpu"), nodes=1, gpus_per_node=0, host_memory_gb=1)
    assert not small.fits


@pytest.mark.parametrize("config,stage", [(None, 0), ("accelerate_configs/single_gpu.yaml", 0),
                                          ("accelerate_configs/ddp.yaml", 0), ("accelerate_configs/zero2.yaml", 2),
                                          ("accelerate_configs/zero3.yaml", 3), ("accelerate_configs/cpu_zero3.yaml", 3),
                                          ("somewhere/else/my-zero3.yaml", 3)])
def test_zero_stage_comes_from_the_accelerate_config(config, stage):
    assert settings.zero_stage_of(config) == stage


def test_more_gpus_under_zero3_means_less_memory_per_gpu():
    recipe = qwen_recipe("14b")
    per_gpu = [estimate.estimate(recipe, nodes=n, gpus_per_node=8, zero_stage=3, tensor_parallel_size=2).training.total
               for n in range(2, 7)]
    assert all(a > b for a, b in zip(per_gpu, per_gpu[1:]))


def test_zero_stages_order_memory():
    recipe = qwen_recipe("7b")
    totals = [estimate.estimate(recipe, nodes=2, gpus_per_node=8, zero_stage=s).training.total for s in (0, 2, 3)]
    assert totals[0] > totals[1] > totals[2]


def test_longer_completions_grow_the_plan():
    recipe = load_recipe("qwen2.5-0.5b-gsm8k")
    short = estimate.estimate(recipe, nodes=1, gpus_per_node=1, completion_tokens=200)
    long = estimate.estimate(recipe, nodes=1, gpus_per_node=1, completion_tokens=1000)
    act = {p: next(i.bytes for i in p.training.items if i.name == "activations") for p in (short, long)}
    assert act[long] > act[short]
    assert long.generation.total > short.generation.total


@pytest.mark.parametrize("name", packaged_recipes())
def test_every_packaged_recipe_fits_the_layout_it_declares(name):
    recipe = load_recipe(name)
    resources = recipe.resources
    assert search.refusal(recipe, resources.nodes, resources.gpus_per_node, float(resources.gpu_memory_gb)) is None


def test_report_is_printable_for_every_packaged_recipe():
    for name in packaged_recipes():
        recipe = load_recipe(name)
        resources = recipe.resources
        text = report.memory_report(recipe, resources.nodes, resources.gpus_per_node, 80)
        assert "verdict: fits" in text, name
