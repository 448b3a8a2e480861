"""The memory planner: exact parameter counts, DeepSpeed's own estimators, verdicts, refusals, monotonicity.

The parameter counts are checked against transformers itself (models built on the meta device from the
same configurations), the ZeRO-2/3 model-state numbers against DeepSpeed's estimators (tolerance: exact for
the underlying functions; 0.01 GiB, their print precision, for the printed ``*_all_cold`` tables). The
measured CPU check (peak RSS of real training processes against the estimate) is ``bench/memory.py``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reasoner import memory
from reasoner.errors import UserError
from reasoner.recipe import load_recipe, packaged_recipes

os.environ.setdefault("DS_ACCELERATOR", "cpu")

GIB = memory.GIB
SIZES = ["0.5b", "1.5b", "3b", "7b", "14b", "32b"]


def qwen_recipe(size: str, **extra: str):
    """The packaged recipe for a Qwen2.5 size when it ships, else the 0.5B recipe with that model."""
    name = f"qwen2.5-{size}-gsm8k"
    overrides = [(k, v) for k, v in extra.items()]
    if name in packaged_recipes():
        return load_recipe(name, overrides) if overrides else load_recipe(name)
    return load_recipe("qwen2.5-0.5b-gsm8k", [("model.id", f"Qwen/Qwen2.5-{size[:-1]}B-Instruct"), *overrides])


# --- model shapes -----------------------------------------------------------------------------


def _meta_model(shape: memory.ModelShape, model_type: str):
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    kwargs = dict(hidden_size=shape.hidden_size, num_hidden_layers=shape.num_layers, num_attention_heads=shape.num_heads,
                  num_key_value_heads=shape.num_kv_heads, intermediate_size=shape.intermediate_size,
                  vocab_size=shape.vocab_size, tie_word_embeddings=shape.tie_word_embeddings)
    config = Qwen2Config(**kwargs) if model_type == "qwen2" else LlamaConfig(**kwargs)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


@pytest.mark.parametrize("size", SIZES)
def test_parameter_count_is_exact_for_the_qwen_table(size):
    shape = memory.table_shape(size)
    model = _meta_model(shape, "qwen2")
    assert shape.params == sum(p.numel() for p in model.parameters())
    largest = max(sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules())
    assert shape.largest_layer_params == largest


def test_known_published_sizes():
    assert memory.table_shape("0.5b").params == 494_032_768
    assert memory.table_shape("7b").params == 7_615_616_512
    assert memory.table_shape("32b").params == 32_763_876_352


def test_smollm2_and_tiny_shapes_count_like_transformers():
    smol = memory.shape_from_config(memory.SMOLLM2_CONFIG, name="smollm2")
    assert smol.params == sum(p.numel() for p in _meta_model(smol, "llama").parameters()) == 134_515_008
    tiny = memory.model_shape("tiny")
    assert tiny.hidden_size == 64 and tiny.num_layers == 2


def test_local_config_wins_and_unknown_models_are_refused(tmp_path):
    config = {"model_type": "qwen2", "hidden_size": 128, "num_hidden_layers": 3, "num_attention_heads": 4,
              "num_key_value_heads": 2, "intermediate_size": 256, "vocab_size": 1000, "tie_word_embeddings": False,
              "torch_dtype": "bfloat16"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    shape = memory.model_shape(str(tmp_path))
    assert shape.params == sum(p.numel() for p in _meta_model(shape, "qwen2").parameters())
    assert "config.json" in shape.source
    assert memory.model_shape("someorg/Qwen2.5-14B-Instruct-GRPO").hidden_size == 5120
    with pytest.raises(UserError, match="cannot size model"):
        memory.model_shape("someorg/unknown-model")


# --- DeepSpeed's estimators ---------------------------------------------------------------------


def _ds_printed_gpu_gib(fn, **kwargs) -> float:
    """The 'per GPU' GiB of the no-offload row that DeepSpeed's ``*_all_cold`` estimator prints."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        fn(**kwargs)
    for line in out.getvalue().splitlines():
        if "offload_optimizer=none" in line and ("offload_param=none" in line or "offload_param" not in line):
            return float(re.findall(r"([\d.]+)GB", line)[1])
    raise AssertionError(f"no no-offload row in:\n{out.getvalue()}")


@pytest.mark.parametrize("size", ["0.5b", "7b", "32b"])
@pytest.mark.parametrize("nodes,gpus", [(1, 1), (1, 8), (4, 8)])
def test_zero2_and_zero3_model_states_equal_deepspeed(size, nodes, gpus):
    from deepspeed.runtime.zero.stage3 import (estimate_zero3_model_states_mem_needs,
                                               estimate_zero3_model_states_mem_needs_all_cold)
    from deepspeed.runtime.zero.stage_1_and_2 import (estimate_zero2_model_states_mem_needs,
                                                      estimate_zero2_model_states_mem_needs_all_cold)

    shape = memory.table_shape(size)
    ranks = nodes * gpus
    ours2 = sum(memory.model_states_bytes(shape.params, zero_stage=2, ranks=ranks, param_bytes=2,
                                          mixed_precision=True).values())
    _, ds2 = estimate_zero2_model_states_mem_needs(shape.params, gpus, nodes, cpu_offload=False)
    assert ours2 == ds2
    printed2 = _ds_printed_gpu_gib(estimate_zero2_model_states_mem_needs_all_cold, total_params=shape.params,
                                   num_gpus_per_node=gpus, num_nodes=nodes)
    assert abs(ours2 / GIB - printed2) <= 0.01

    ours3 = sum(memory.model_states_bytes(shape.params, zero_stage=3, ranks=ranks, param_bytes=2, mixed_precision=True,
                                          largest_layer_params=shape.largest_layer_params).values())
    _, ds3, _ = estimate_zero3_model_states_mem_needs(shape.params, shape.largest_layer_params, gpus, nodes,
                                                      cpu_offload=False, cpu_offload_params=False)
    assert ours3 == ds3
    printed3 = _ds_printed_gpu_gib(estimate_zero3_model_states_mem_needs_all_cold, total_params=shape.params,
                                   largest_layer_params=shape.largest_layer_params, num_gpus_per_node=gpus,
                                   num_nodes=nodes)
    assert abs(ours3 / GIB - printed3) <= 0.01


def test_plan_model_states_equal_deepspeed_for_its_training_ranks():
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs

    recipe = qwen_recipe("7b", beta="0.0")
    plan = memory.estimate(recipe, nodes=3, gpus_per_node=8, zero_stage=3)
    assert plan.placement == "dedicated-node" and plan.training_ranks == 16
    states = sum(i.bytes for i in plan.training.items
                 if i.name in ("weights", "gradients", "optimizer states", "ZeRO-3 gathered layer"))
    _, ds3, _ = estimate_zero3_model_states_mem_needs(plan.model.params, plan.model.largest_layer_params, 8, 2,
                                                      cpu_offload=False, cpu_offload_params=False)
    assert states == ds3


# --- recipes, verdicts, refusals ----------------------------------------------------------------


def test_reference_recipe_fits_one_80gb_gpu():
    plan = memory.estimate(load_recipe("qwen2.5-0.5b-gsm8k"), nodes=1, gpus_per_node=1, gpu_memory_gb=80)
    assert plan.fits and plan.placement == "colocate" and plan.zero_stage == 0
    names = [i.name for i in plan.training.items]
    assert {"weights", "gradients", "optimizer states", "reference model", "activations", "colocated vLLM"} <= set(names)
    text = memory.format_memory_plan(plan)
    assert "verdict: fits" in text and "headroom" in text and "GiB" in text


@pytest.mark.parametrize("size", SIZES)
def test_every_qwen_size_has_a_smallest_layout_that_fits(size):
    recipe = qwen_recipe(size)
    nodes, gpus, stage, tp = memory.smallest_layout(recipe, 80)
    found = memory.smallest_plan(recipe, 80)
    assert (found.nodes, found.gpus_per_node, found.zero_stage, found.tensor_parallel_size) == (nodes, gpus, stage, tp)
    plan = memory.estimate(recipe, nodes=nodes, gpus_per_node=gpus, zero_stage=stage, tensor_parallel_size=tp,
                           placement=found.placement)
    assert plan.fits
    if nodes * gpus > 1:  # one GPU fewer (same node size) does not fit, whatever the ZeRO stage
        fewer = (nodes - 1, gpus) if nodes > 1 else (1, gpus // 2)
        for zero in memory.ZERO_STAGES:
            for where in ("auto", recipe.generation["placement"]):
                try:
                    smaller = memory.estimate(recipe, nodes=fewer[0], gpus_per_node=fewer[1], zero_stage=zero,
                                              placement=where)
                except UserError:
                    continue
                assert not smaller.fits


def test_smallest_layouts_grow_with_the_model():
    totals = []
    for size in SIZES:
        nodes, gpus, _stage, _tp = memory.smallest_layout(qwen_recipe(size), 80)
        totals.append(nodes * gpus)
    assert totals == sorted(totals)
    assert totals[0] == 1 and totals[-1] > 8  # 0.5B on one GPU; 32B needs more than one node of 8


def test_32b_on_one_gpu_without_zero_is_refused():
    recipe = qwen_recipe("32b", **{"generation.placement": "colocate", "generation.tensor_parallel_size": "1"})
    plan = memory.estimate(recipe, nodes=1, gpus_per_node=1, gpu_memory_gb=80, zero_stage=0)
    assert not plan.fits and plan.training.headroom < 0
    message = memory.refusal(recipe, 1, 1, 80, zero_stage=0)
    assert message and "does not fit" in message and "smallest layout that fits" in message
    assert "does not fit" in memory.memory_report(recipe, 1, 1, 80)


def test_layouts_topology_refuses_come_back_as_refusals():
    recipe = load_recipe("qwen2.5-0.5b-gsm8k")
    message = memory.refusal(recipe, 1, 0, 80)  # vLLM without GPUs
    assert message and "vllm" in message.lower()


def test_vllm_queues_instead_of_failing_when_the_kv_cache_is_short():
    recipe = qwen_recipe("7b", per_device_train_batch_size="64", num_generations="16")
    plan = memory.estimate(recipe, nodes=2, gpus_per_node=8, zero_stage=3, tensor_parallel_size=1)
    assert plan.generation is not None and plan.generation_queued and plan.generation.fits
    starved = memory.estimate(qwen_recipe("0.5b", **{"generation.gpu_memory_utilization": "0.01"}), nodes=1,
                              gpus_per_node=1)
    assert starved.generation is not None and not starved.generation.fits and not starved.fits


def test_cpu_recipes_are_planned_per_process():
    plan = memory.estimate(load_recipe("smollm2-cpu"), nodes=1, gpus_per_node=0)
    assert plan.backend == "transformers" and plan.generation is None and plan.training.capacity is None
    assert plan.fits
    small = memory.estimate(load_recipe("smollm2-cpu"), nodes=1, gpus_per_node=0, host_memory_gb=1)
    assert not small.fits


@pytest.mark.parametrize("config,stage", [(None, 0), ("accelerate_configs/single_gpu.yaml", 0),
                                          ("accelerate_configs/ddp.yaml", 0), ("accelerate_configs/zero2.yaml", 2),
                                          ("accelerate_configs/zero3.yaml", 3), ("accelerate_configs/cpu_zero3.yaml", 3),
                                          ("somewhere/else/my-zero3.yaml", 3)])
def test_zero_stage_comes_from_the_accelerate_config(config, stage):
    assert memory.zero_stage_of(config) == stage


# --- monotonicity ---------------------------------------------------------------------------------


def test_more_gpus_under_zero3_means_less_memory_per_gpu():
    recipe = qwen_recipe("14b")
    per_gpu = [memory.estimate(recipe, nodes=n, gpus_per_node=8, zero_stage=3, tensor_parallel_size=2).training.total
               for n in range(2, 7)]
    assert all(a > b for a, b in zip(per_gpu, per_gpu[1:]))


def test_zero_stages_order_memory():
    recipe = qwen_recipe("7b")
    totals = [memory.estimate(recipe, nodes=2, gpus_per_node=8, zero_stage=s).training.total for s in (0, 2, 3)]
    assert totals[0] > totals[1] > totals[2]


@settings(max_examples=40, deadline=None)
@given(size=st.sampled_from(SIZES), batch=st.integers(1, 64), prompt=st.integers(1, 2048),
       short=st.integers(1, 4096), extra=st.integers(1, 4096), checkpointing=st.booleans())
def test_longer_completions_need_more_activation_memory(size, batch, prompt, short, extra, checkpointing):
    shape = memory.table_shape(size)

    def activations(completion: int) -> int:
        return sum(memory.training_activation_bytes(shape, batch=batch, seq_len=prompt + completion,
                                                    scored_tokens=completion, act_bytes=2, residual_bytes=2,
                                                    checkpointing=checkpointing).values())

    assert activations(short + extra) > activations(short)
    if not checkpointing:
        ckpt = sum(memory.training_activation_bytes(shape, batch=batch, seq_len=prompt + short, scored_tokens=short,
                                                    act_bytes=2, residual_bytes=2, checkpointing=True).values())
        assert ckpt < activations(short)


def test_longer_completions_grow_the_plan():
    recipe = load_recipe("qwen2.5-0.5b-gsm8k")
    short = memory.estimate(recipe, nodes=1, gpus_per_node=1, completion_tokens=200)
    long = memory.estimate(recipe, nodes=1, gpus_per_node=1, completion_tokens=1000)
    act = {p: next(i.bytes for i in p.training.items if i.name == "activations") for p in (short, long)}
    assert act[long] > act[short]
    assert long.generation.total > short.generation.total


@pytest.mark.parametrize("name", packaged_recipes())
def test_every_packaged_recipe_fits_the_layout_it_declares(name):
    recipe = load_recipe(name)
    resources = getattr(recipe, "resources", None) or {}
    gpus = resources.get("gpus_per_node", 1 if recipe.generation["backend"] == "vllm" else 0)
    assert memory.refusal(recipe, resources.get("nodes", 1), gpus, float(resources.get("gpu_memory_gb", 80))) is None


def test_report_is_printable_for_every_packaged_recipe():
    for name in packaged_recipes():
        recipe = load_recipe(name)
        resources = getattr(recipe, "resources", None) or {}
        gpus = resources.get("gpus_per_node", 1 if recipe.generation["backend"] == "vllm" else 0)
        text = memory.memory_report(recipe, resources.get("nodes", 1), gpus, 80)
        assert "verdict: fits" in text, name


# --- the activation count against what autograd really keeps --------------------------------------


@pytest.mark.parametrize("model_type,dtype", [("llama", "float32"), ("qwen2", "float32"), ("qwen2", "bfloat16")])
def test_layer_activation_count_matches_saved_tensors(model_type, dtype):
    """Sum the tensors autograd saves in a real forward (unique storages, parameters excluded)."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    torch.manual_seed(0)
    kwargs = dict(hidden_size=96, num_hidden_layers=3, num_attention_heads=6, num_key_value_heads=2,
                  intermediate_size=256, vocab_size=300, tie_word_embeddings=True)
    config = Qwen2Config(**kwargs) if model_type == "qwen2" else LlamaConfig(**kwargs)
    torch_dtype = getattr(torch, dtype)
    model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype).train()
    batch, seq = 4, 50
    ids = torch.randint(0, 300, (batch, seq))
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[:, :7] = 0  # left padding, as GRPO batches have
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def keep(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
        model.model(input_ids=ids, attention_mask=mask)
    shape = memory.shape_from_config(config.to_dict())
    act = 2 if dtype == "bfloat16" else 4
    tokens = batch * seq
    expected = (config.num_hidden_layers * (memory.layer_activation_bytes_per_token(shape, act) * tokens
                                            + batch * seq * seq * act)
                + (4 + act) * shape.hidden_size * tokens)  # the final norm
    measured = sum(saved.values())
    assert abs(measured - expected) / measured < 0.02, (measured, expected)
