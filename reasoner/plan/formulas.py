"""The arithmetic of GPU memory for GRPO training and generation: pure functions, each testable on its own.

* **weights, gradients, optimizer states** follow DeepSpeed's own estimators exactly for ZeRO-2/3
  (``estimate_zero2_model_states_mem_needs``, ``estimate_zero3_model_states_mem_needs``, no offload); without
  DeepSpeed the Trainer keeps the dtype the model was loaded in, and DDP adds one bucket copy of the gradients.
* **DeepSpeed's buffers**, which its estimators leave out: ZeRO-3 gathers up to ``stage3_max_live_parameters``
  16-bit parameters at once and prefetches a bucket ahead, and ZeRO-2/3 reduce gradients through a
  ``reduce_bucket_size`` buffer (DeepSpeed's defaults; accelerate's configs set none of them).
* **activations** of one micro-batch, counted tensor by tensor for a Llama/Qwen2 decoder layer as autograd saves
  them, with or without activation checkpointing, plus TRL's chunked log-prob head.
* **KV cache** per token (vLLM, or transformers ``generate`` in the training process).

Sizes are bytes; GiB means 2**30 bytes.
"""

from __future__ import annotations

import math

from reasoner.errors import UserError
from reasoner.plan.shapes import ModelShape

GIB = 1 << 30
# Training GPU: CUDA context + cuBLAS/NCCL workspaces, then a fragmentation allowance on everything else.
CUDA_OVERHEAD_BYTES = 1 * GIB
FRAGMENTATION = 0.05
# vLLM's memory outside weights and KV cache: CUDA context and graphs (fixed part), profile-run activations
# over max_num_batched_tokens, and the sampler's fp32 logits for max_num_seqs sequences.
VLLM_FIXED_BYTES = int(1.5 * GIB)
VLLM_MAX_BATCHED_TOKENS = 8192
VLLM_MAX_NUM_SEQS = 256
# TRL's chunked log-prob head (trl/kernels/chunked_logprob.py): token chunk x vocabulary chunk tiles.
LOGPROB_TOKEN_CHUNK = 4096
LOGPROB_VOCAB_CHUNK = 32768
# DeepSpeed's defaults (deepspeed/runtime/zero/config.py), in elements of the 16-bit training dtype.
ZERO3_MAX_LIVE_PARAMETERS = 1_000_000_000
ZERO3_PREFETCH_BUCKET = 50_000_000
ZERO_REDUCE_BUCKET = 500_000_000

# Each buffer's DeepSpeed setting, for the report.
ZERO_BUFFER_SETTINGS = {"reduce bucket": f"reduce_bucket_size {ZERO_REDUCE_BUCKET:.0e}",
                        "live parameters": f"stage3_max_live_parameters {ZERO3_MAX_LIVE_PARAMETERS:.0e}",
                        "prefetch bucket": f"stage3_prefetch_bucket_size {ZERO3_PREFETCH_BUCKET:.0e}"}

DTYPE_BYTES = {"float32": 4, "float": 4, "bfloat16": 2, "float16": 2, "half": 2}
ZERO_STAGES = (0, 2, 3)


def model_states_bytes(params: int, *, zero_stage: int, ranks: int, param_bytes: int, mixed_precision: bool,
                       largest_layer_params: int = 0) -> dict[str, int]:
    """Weights, gradients and optimizer states per training GPU.

    ZeRO-2/3 with mixed precision reproduce DeepSpeed's estimators: 2P + 18P/N (ZeRO-2) and
    4 x largest layer + 18P/N (ZeRO-3), where 18 = 2 (16-bit grads) + 4 (fp32 grads) + 4 (fp32 master) + 8 (Adam).
    Stage 0 keeps the model's dtype everywhere (torch AdamW allocates its states like the parameter) and DDP
    (ranks > 1) adds a bucket copy of the gradients (``gradient_as_bucket_view`` is off by default).
    """
    if zero_stage not in ZERO_STAGES:
        raise UserError(f"ZeRO stage {zero_stage} is not planned for; use 0 (single/DDP), 2 or 3")
    n = max(1, ranks)
    p = params
    if zero_stage == 0:
        states = {"weights": param_bytes * p, "gradients": param_bytes * p, "optimizer": 2 * param_bytes * p}
        if ranks > 1:
            states["gradients"] += param_bytes * p  # DDP's allreduce buckets hold a second copy
        return states
    if mixed_precision:
        # DeepSpeed rounds once over the sharded part: int(18 * P / N); the split below keeps that sum exact.
        sharded = int(18 * p / n)
        if zero_stage == 2:
            optimizer = int(12 * p / n)  # fp32 master weights + two fp32 Adam states
            return {"weights": 2 * p, "gradients": sharded - optimizer, "optimizer": optimizer}
        weights, gradients = int(2 * p / n), int(4 * p / n)
        return {"weights": weights, "gradients": gradients, "optimizer": sharded - weights - gradients,
                "gathered layer": 4 * largest_layer_params}
    # DeepSpeed in fp32: no master copy, states and gradients sharded.
    weights = 4 * p if zero_stage == 2 else (4 * p) // n
    states = {"weights": weights, "gradients": (4 * p) // n, "optimizer": (8 * p) // n}
    if zero_stage == 3:
        states["gathered layer"] = 4 * largest_layer_params
    return states


def layer_activation_bytes_per_token(shape: ModelShape, act_bytes: int) -> int:
    """Bytes autograd keeps per token for one decoder layer (no checkpointing), SDPA attention.

    Measured tensor by tensor with ``torch.autograd.graph.saved_tensors_hooks`` on a Llama/Qwen2 layer:
    RMSNorm x2 keeps its fp32 input (4h) and the normalized value the weight multiplies (a h); attention keeps
    the q/k/v input (a h), q, and k and v repeated to all heads (HF repeats them whenever a padding mask is
    present), and its output, which is also o_proj's input (4 a q); the MLP keeps its input (a h) and gate,
    silu(gate), up and their product (4 a I). The attention mask is counted separately (per sequence).
    """
    h, q, i = shape.hidden_size, shape.q_dim, shape.intermediate_size
    return 8 * h + act_bytes * (4 * h + 4 * q + 4 * i)


def kv_bytes_per_token(shape: ModelShape, dtype_bytes: int, tensor_parallel: int = 1) -> int:
    """K and V of every layer for one token, on one GPU of a tensor-parallel group (KV heads replicate when fewer)."""
    heads_per_gpu = math.ceil(shape.num_kv_heads / max(1, tensor_parallel))
    return 2 * shape.num_layers * heads_per_gpu * shape.head_dim * dtype_bytes


def training_activation_bytes(shape: ModelShape, *, batch: int, seq_len: int, scored_tokens: int, act_bytes: int,
                              residual_bytes: int, checkpointing: bool, compact_head: bool = True) -> dict[str, int]:
    """Activation memory of one micro-batch: saved tensors of the layers plus TRL's log-prob head at its peak.

    ``scored_tokens`` are the completion tokens whose log-probs are computed; on GPU TRL scores only those
    (``compact_head``), elsewhere every position. Checkpointing keeps each layer's input and recomputes one
    layer at a time during the backward pass.
    """
    tokens = batch * seq_len
    # SDPA turns the boolean padding mask into an additive one in the attention dtype in every layer, and
    # keeps it for the backward pass: batch x seq x seq per layer.
    per_layer = layer_activation_bytes_per_token(shape, act_bytes) * tokens + batch * seq_len * seq_len * act_bytes
    if checkpointing:
        layers = shape.num_layers * residual_bytes * shape.hidden_size * tokens + per_layer
    else:
        layers = shape.num_layers * per_layer
    h = shape.hidden_size
    head_tokens = batch * scored_tokens if compact_head else batch * (seq_len - 1)
    final_norm = (4 + act_bytes) * h * tokens
    head_saved = act_bytes * h * head_tokens
    tile = min(head_tokens, LOGPROB_TOKEN_CHUNK) * min(shape.vocab_size, LOGPROB_VOCAB_CHUNK) * act_bytes
    head_backward = 4 * shape.vocab_size * h + 4 * h * head_tokens + tile  # fp32 LM-head grad, grad of hidden, tile
    mask = batch * seq_len * seq_len  # the boolean 4D mask the model builds once
    return {"layers": layers, "log-prob head": final_norm + head_saved + head_backward, "mask": mask}


def generation_kv_bytes(shape: ModelShape, *, sequences: int, seq_len: int, dtype_bytes: int) -> int:
    """KV cache of a transformers ``generate`` call over ``sequences`` rows (in the training process)."""
    return sequences * seq_len * kv_bytes_per_token(shape, dtype_bytes)


def zero_buffer_bytes(params: int, *, zero_stage: int, element_bytes: int = 2) -> dict[str, int]:
    """DeepSpeed's working buffers per GPU, beyond its estimators' model states.

    ZeRO-3 holds up to ``stage3_max_live_parameters`` gathered parameters (never more than the model) and a
    prefetch bucket; ZeRO-2 and ZeRO-3 allocate a ``reduce_bucket_size`` gradient bucket
    (``contiguous_gradients``, on by default).
    """
    if zero_stage not in (2, 3):
        return {}
    buffers = {"reduce bucket": ZERO_REDUCE_BUCKET * element_bytes}
    if zero_stage == 3:
        buffers["live parameters"] = min(ZERO3_MAX_LIVE_PARAMETERS, params) * element_bytes
        buffers["prefetch bucket"] = min(ZERO3_PREFETCH_BUCKET, params) * element_bytes
    return buffers


def vllm_runtime_bytes(shape: ModelShape, *, tensor_parallel: int, dtype_bytes: int) -> int:
    """vLLM's memory beyond weights and KV cache: context and graphs, profile activations, sampler logits."""
    activations = VLLM_MAX_BATCHED_TOKENS * (shape.hidden_size + 2 * shape.intermediate_size // tensor_parallel)
    return VLLM_FIXED_BYTES + activations * 2 * dtype_bytes + VLLM_MAX_NUM_SEQS * shape.vocab_size * 4


def gib(value: int | float) -> str:
    """Bytes as GiB with two decimals."""
    return f"{value / GIB:.2f}"
