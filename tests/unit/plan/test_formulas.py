"""The memory arithmetic: DeepSpeed's own estimators (exact for the functions; 0.01 GiB, their print precision, for the
printed ``*_all_cold`` tables), activations against what autograd really keeps, monotonicity. The measured CPU check
(peak RSS of real training processes against the estimate) is ``bench/memory.py``."""

from __future__ import annotations

import os
import contextlib
import io
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reasoner.plan import formulas, shapes

os.environ.setdefault("DS_ACCELERATOR", "cpu")
GIB = formulas.GIB
SIZES = ["0.5b", "1.5b", "3b", "7b", "14b", "32b"]


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

    shape = shapes.table_shape(size)
    ranks = nodes * gpus
    ours2 = sum(formulas.model_states_bytes(shape.params, zero_stage=2, ranks=ranks, param_bytes=2,
                                          mixed_precision=True).values())
    _, ds2 = estimate_zero2_model_states_mem_needs(shape.params, gpus, nodes, cpu_offload=False)
    assert ours2 == ds2
    printed2 = _ds_printed_gpu_gib(estimate_zero2_model_states_mem_needs_all_cold, total_params=shape.params,
                                   num_gpus_per_node=gpus, num_nodes=nodes)
    assert abs(ours2 / GIB - printed2) <= 0.01

    ours3 = sum(formulas.model_states_bytes(shape.params, zero_stage=3, ranks=ranks, param_bytes=2, mixed_precision=True,
                                          largest_layer_params=shape.largest_layer_params).values())
    _, ds3, _ = estimate_zero3_model_states_mem_needs(shape.params, shape.largest_layer_params, gpus, nodes,
                                                      cpu_offload=False, cpu_offload_params=False)
    assert ours3 == ds3
    printed3 = _ds_printed_gpu_gib(estimate_zero3_model_states_mem_needs_all_cold, total_params=shape.params,
                                   largest_layer_params=shape.largest_layer_params, num_gpus_per_node=gpus,
                                   num_nodes=nodes)
    assert abs(ours3 / GIB - printed3) <= 0.01


@settings(max_examples=40, deadline=None)
@given(size=st.sampled_from(SIZES), batch=st.integers(1, 64), prompt=st.integers(1, 2048),
       short=st.integers(1, 4096), extra=st.integers(1, 4096), checkpointing=st.booleans())
def test_longer_completions_need_more_activation_memory(size, batch, prompt, short, extra, checkpointing):
    shape = shapes.table_shape(size)

    def activations(completion: int) -> int:
        return sum(formulas.training_activation_bytes(shape, batch=batch, seq_len=prompt + completion,
                                                    scored_tokens=completion, act_bytes=2, residual_bytes=2,
                                                    checkpointing=checkpointing).values())

    assert activations(short + extra) > activations(short)
    if not checkpointing:
        ckpt = sum(formulas.training_activation_bytes(shape, batch=batch, seq_len=prompt + short, scored_tokens=short,
                                                    act_bytes=2, residual_bytes=2, checkpointing=True).values())
        assert ckpt < activations(short)


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
    shape = shapes.shape_from_config(config.to_dict())
    act = 2 if dtype == "bfloat16" else 4
    tokens = batch * seq
    expected = (config.num_hidden_layers * (formulas.layer_activation_bytes_per_token(shape, act) * tokens
                                            + batch * seq * seq * act)
                + (4 + act) * shape.hidden_size * tokens)  # the final norm
    measured = sum(saved.values())
    assert abs(measured - expected) / measured < 0.02, (measured, expected)
