"""Per-GPU memory planner: will a recipe fit a layout, and what is the smallest layout it fits?

A GRPO run that does not fit its GPUs fails minutes into the job (after the queue, the download and the
model load), with an out-of-memory error that names no fix. This module answers the question before
anything starts, from the model's architecture and the recipe alone, and ``reasoner plan`` prints it.

What is counted, per training GPU (bytes):

* **weights, gradients, optimizer states.** Without DeepSpeed (ZeRO stage 0: one process, or DDP) the
  Trainer keeps the dtype the model was loaded in: a ``bfloat16`` model has bf16 gradients and torch's AdamW
  allocates its two states like the parameter (bf16), with no fp32 master copy; DDP adds one bucket copy of
  the gradients. Under DeepSpeed with bf16/fp16 there are fp32 master weights and fp32 AdamW states, and
  ZeRO-2 shards gradients and optimizer states across the training ranks, ZeRO-3 the weights too. These
  numbers follow DeepSpeed's own estimators exactly (``estimate_zero2_model_states_mem_needs``,
  ``estimate_zero3_model_states_mem_needs``, no offload): ``tests/test_memory.py`` checks it.
* **the reference model** when ``beta > 0`` (sharded under ZeRO-3, whole otherwise, as TRL prepares it).
* **activations** of one micro-batch (``per_device_train_batch_size`` completions of prompt + completion
  tokens), counted tensor by tensor for a Llama/Qwen2 decoder layer as autograd saves them (unfused RMSNorm
  keeps an fp32 copy; SDPA keeps q, k and v repeated to all heads, its output, and an additive copy of the
  padding mask per layer; the SwiGLU MLP keeps four intermediate-size tensors), with or without activation
  checkpointing, plus TRL's chunked log-prob head (a [tokens, 32768] logit tile and an fp32 gradient of the
  LM head, never the full logits).
* **generation**: a colocated vLLM takes ``gpu_memory_utilization`` of the training GPU; the transformers
  backend generates inside the training process (KV cache of the whole per-process generation batch).
  Generation, scoring and training happen one after the other, so the peak takes the largest of them.
* a fixed **overhead**: CUDA context and cuBLAS/NCCL workspaces, plus a fragmentation allowance.

Per generation GPU (vLLM server or colocated engine): weights / tensor-parallel size, the KV cache for
``num_generations x prompts`` sequences of prompt + completion tokens, and vLLM's runtime (CUDA graphs,
profile-run activations, sampler), against ``gpu_memory_utilization`` of the GPU. A KV cache smaller than the
whole batch does not fail: vLLM queues sequences; the plan says so.

Model sizes come from the model's ``config.json`` when one is available locally (a local folder, a built-in
model already built, or the hub cache), else from a built-in table of Qwen2.5 Instruct configurations whose
values are copied from the models' published ``config.json`` files. Sizes are GiB (2**30 bytes): an
"80 GB" GPU is taken as 80 GiB.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Mapping

from reasoner.errors import UserError

GIB = 1 << 30
DEFAULT_GPU_MEMORY_GB = 80.0

# Training GPU: CUDA context + cuBLAS/NCCL workspaces, then a fragmentation allowance on everything else.
CUDA_OVERHEAD_BYTES = 1 * GIB
FRAGMENTATION = 0.05
# vLLM's memory outside weights and KV cache: CUDA context and graphs (fixed part), profile-run activations
# over max_num_batched_tokens, and the sampler's fp32 logits for max_num_seqs sequences.
VLLM_FIXED_BYTES = int(1.5 * GIB)
VLLM_MAX_BATCHED_TOKENS = 8192
VLLM_MAX_NUM_SEQS = 256
# `trl vllm-serve` uses this gpu_memory_utilization unless its command line says otherwise.
VLLM_SERVE_DEFAULT_UTILIZATION = 0.9
# TRL's chunked log-prob head (trl/kernels/chunked_logprob.py): token chunk x vocabulary chunk tiles.
LOGPROB_TOKEN_CHUNK = 4096
LOGPROB_VOCAB_CHUNK = 32768

DTYPE_BYTES = {"float32": 4, "float": 4, "bfloat16": 2, "float16": 2, "half": 2}
ZERO_STAGES = (0, 2, 3)
GPU_COUNTS = (1, 2, 4, 8)


# ---------------------------------------------------------------------------------------------
# Model shapes


@dataclasses.dataclass(frozen=True)
class ModelShape:
    """The architecture numbers that decide memory: a dense decoder with gated (SwiGLU) MLP, as Qwen2/Llama."""

    name: str
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    torch_dtype: str = "bfloat16"
    source: str = ""

    @property
    def q_dim(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.num_kv_heads * self.head_dim

    @property
    def layer_params(self) -> int:
        h, q, kv, i = self.hidden_size, self.q_dim, self.kv_dim, self.intermediate_size
        attention = h * q + 2 * h * kv + q * h
        if self.qkv_bias:
            attention += q + 2 * kv
        if self.o_bias:
            attention += h
        mlp = 3 * h * i + (2 * i + h if self.mlp_bias else 0)
        return attention + mlp + 2 * h  # two RMSNorm weights

    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def params(self) -> int:
        """Exact parameter count (tied embeddings counted once), as ``sum(p.numel() for p in model.parameters())``."""
        head = 0 if self.tie_word_embeddings else self.embedding_params
        return self.embedding_params + self.num_layers * self.layer_params + self.hidden_size + head

    @property
    def largest_layer_params(self) -> int:
        """Largest parameter count held directly by one module (DeepSpeed's ``largest_layer_params``)."""
        h, i = self.hidden_size, self.intermediate_size
        return max(self.embedding_params, h * i + (i if self.mlp_bias else 0), h * self.q_dim + self.q_dim)


# The published config.json values of the Qwen2.5 Instruct models (huggingface.co/Qwen/Qwen2.5-*-Instruct):
# (hidden_size, num_hidden_layers, num_attention_heads, num_key_value_heads, intermediate_size, vocab_size,
# tie_word_embeddings). All are model_type qwen2 (bias on q/k/v only), head_dim = hidden / heads, bfloat16.
QWEN25_CONFIGS: dict[str, tuple[int, int, int, int, int, int, bool]] = {
    "0.5b": (896, 24, 14, 2, 4864, 151936, True),
    "1.5b": (1536, 28, 12, 2, 8960, 151936, True),
    "3b": (2048, 36, 16, 2, 11008, 151936, True),
    "7b": (3584, 28, 28, 4, 18944, 152064, False),
    "14b": (5120, 48, 40, 8, 13824, 152064, False),
    "32b": (5120, 64, 40, 8, 27648, 152064, False),
}
# SmolLM2-135M-Instruct's published config.json (model_type llama, no biases); the built-in export is float32.
SMOLLM2_CONFIG: dict[str, Any] = {
    "model_type": "llama", "hidden_size": 576, "num_hidden_layers": 30, "num_attention_heads": 9,
    "num_key_value_heads": 3, "intermediate_size": 1536, "vocab_size": 49152, "tie_word_embeddings": True,
    "attention_bias": False, "mlp_bias": False, "torch_dtype": "float32",
}


def shape_from_config(config: Mapping[str, Any], *, name: str = "", source: str = "") -> ModelShape:
    """A ModelShape from a transformers ``config.json`` mapping (nested ``text_config`` is followed)."""
    if "hidden_size" not in config and isinstance(config.get("text_config"), Mapping):
        config = config["text_config"]
    try:
        hidden = int(config["hidden_size"])
        heads = int(config["num_attention_heads"])
        shape = ModelShape(
            name=name,
            hidden_size=hidden,
            num_layers=int(config["num_hidden_layers"]),
            num_heads=heads,
            num_kv_heads=int(config.get("num_key_value_heads") or heads),
            head_dim=int(config.get("head_dim") or hidden // heads),
            intermediate_size=int(config["intermediate_size"]),
            vocab_size=int(config["vocab_size"]),
            tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
            qkv_bias=(config.get("model_type") == "qwen2") or bool(config.get("attention_bias", False)),
            o_bias=bool(config.get("attention_bias", False)) and config.get("model_type") != "qwen2",
            mlp_bias=bool(config.get("mlp_bias", False)),
            torch_dtype=str(config.get("torch_dtype") or config.get("dtype") or "float32"),
            source=source,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"cannot size model {name or '?'} from {source or 'its config'}: missing or bad key {exc}") from None
    return shape


def _read_config(folder: Path, name: str) -> ModelShape | None:
    path = folder / "config.json"
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return shape_from_config(config, name=name, source=f"config.json in {folder}")


def _builtin_shape(model_id: str) -> ModelShape:
    """The shape of a built-in model, from its build when it exists, without building it."""
    if model_id == "tiny":
        from reasoner.tinymodel import DEFAULT_PARAMS, tiny_model_cache_dir

        built = _read_config(tiny_model_cache_dir(), "tiny")
        if built is not None:
            return built
        p = DEFAULT_PARAMS
        return shape_from_config(
            {"model_type": "qwen2", "hidden_size": p["hidden_size"], "num_hidden_layers": p["num_layers"],
             "num_attention_heads": p["num_heads"], "num_key_value_heads": p["num_kv_heads"],
             "intermediate_size": p["intermediate_size"], "vocab_size": p["vocab_size"],
             "tie_word_embeddings": True, "torch_dtype": "float32"},
            name="tiny", source="reasoner.tinymodel.DEFAULT_PARAMS (not built yet)",
        )
    try:
        from reasoner.models import smollm2_cache_dir

        built = _read_config(smollm2_cache_dir(), "smollm2")
    except UserError:
        built = None
    return built or shape_from_config(SMOLLM2_CONFIG, name="smollm2", source="SmolLM2-135M-Instruct published config.json")


def _cached_hub_config(model_id: str, revision: str | None) -> ModelShape | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub is a dependency
        return None
    try:
        found = try_to_load_from_cache(model_id, "config.json", revision=revision or "main")
    except Exception:  # noqa: BLE001 - a malformed id or cache means "not cached"
        return None
    if isinstance(found, str) and os.path.isfile(found):
        return _read_config(Path(found).parent, model_id)
    return None


def qwen25_size(model_id: str) -> str | None:
    """``Qwen/Qwen2.5-7B-Instruct`` -> ``7b`` (None when the id names no Qwen2.5 size in the table)."""
    name = model_id.rstrip("/").rsplit("/", 1)[-1].lower()
    match = re.search(r"qwen2\.5-(\d+(?:\.\d+)?)b(?![a-z0-9])", name)
    if match and f"{match.group(1)}b" in QWEN25_CONFIGS:
        return f"{match.group(1)}b"
    return None


def table_shape(size: str) -> ModelShape:
    """The built-in table's Qwen2.5 Instruct shape for a size such as ``7b``."""
    hidden, layers, heads, kv, inter, vocab, tied = QWEN25_CONFIGS[size]
    return shape_from_config(
        {"model_type": "qwen2", "hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
         "num_key_value_heads": kv, "intermediate_size": inter, "vocab_size": vocab, "tie_word_embeddings": tied,
         "torch_dtype": "bfloat16"},
        name=f"Qwen/Qwen2.5-{size[:-1]}B-Instruct",
        source=f"built-in table (Qwen2.5-{size[:-1].upper()}B-Instruct published config.json)",
    )


def model_shape(model_id: str, revision: str | None = None) -> ModelShape:
    """Architecture of ``model_id``: local config.json first (folder, built-in build, hub cache), then the table."""
    if model_id in ("tiny", "smollm2"):
        return _builtin_shape(model_id)
    folder = Path(model_id).expanduser()
    if folder.is_dir():
        shape = _read_config(folder, model_id)
        if shape is None:
            raise UserError(f"{folder} holds no config.json: point model.id at a model folder")
        return shape
    cached = _cached_hub_config(model_id, revision)
    if cached is not None:
        return cached
    size = qwen25_size(model_id)
    if size is not None:
        return dataclasses.replace(table_shape(size), name=model_id)
    raise UserError(
        f"cannot size model '{model_id}': no config.json for it in the local cache and it is not a Qwen2.5 size "
        f"the planner knows ({', '.join(QWEN25_CONFIGS)}); run 'reasoner prefetch' first or give a local folder"
    )


# ---------------------------------------------------------------------------------------------
# Pieces of the estimate (pure arithmetic, each testable on its own)


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


# ---------------------------------------------------------------------------------------------
# The plan


@dataclasses.dataclass(frozen=True)
class Item:
    """One line of a budget: what it is, its size, and how it was counted."""

    name: str
    bytes: int
    note: str = ""


@dataclasses.dataclass(frozen=True)
class Budget:
    """What one device holds against its capacity (None: no verdict, e.g. CPU host memory)."""

    role: str
    items: tuple[Item, ...]
    capacity: int | None
    notes: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return sum(item.bytes for item in self.items)

    @property
    def headroom(self) -> int | None:
        return None if self.capacity is None else self.capacity - self.total

    @property
    def fits(self) -> bool:
        return self.capacity is None or self.total <= self.capacity


@dataclasses.dataclass(frozen=True)
class MemoryPlan:
    """The per-device memory of one recipe on one layout, and the verdict."""

    recipe: str
    model: ModelShape
    nodes: int
    gpus_per_node: int
    gpu_memory_gb: float
    zero_stage: int
    placement: str
    backend: str
    tensor_parallel_size: int
    training_ranks: int
    activation_checkpointing: bool
    activations_other_mode: int  # activations with checkpointing flipped, for comparison
    training: Budget
    generation: Budget | None
    notes: tuple[str, ...] = ()
    generation_queued: bool = False  # vLLM's KV cache holds only part of the generation batch at once

    @property
    def fits(self) -> bool:
        return self.training.fits and (self.generation is None or self.generation.fits)

    @property
    def on_gpu(self) -> bool:
        return self.gpus_per_node > 0

    def verdict(self) -> str:
        """One line: fits or not, with the headroom (or the shortfall) of each device kind."""
        parts = []
        for budget in (self.training, self.generation):
            if budget is None:
                continue
            if budget.capacity is None:
                parts.append(f"{budget.role} {gib(budget.total)} GiB (no limit given)")
            else:
                word = "headroom" if budget.fits else "SHORT BY"
                parts.append(f"{budget.role} {gib(budget.total)} of {gib(budget.capacity)} GiB, "
                             f"{word} {gib(abs(budget.headroom or 0))} GiB")
        return ("fits: " if self.fits else "does not fit: ") + "; ".join(parts)


def gib(value: int | float) -> str:
    return f"{value / GIB:.2f}"


def zero_stage_of(accelerate_config: str | None) -> int:
    """ZeRO stage of an accelerate config: read from the file when it is found, else from its name."""
    if not accelerate_config:
        return 0
    text_stage = _stage_from_file(accelerate_config)
    if text_stage is not None:
        return text_stage
    name = Path(accelerate_config).name.lower()
    if "zero3" in name:
        return 3
    if "zero2" in name or "zero1" in name:
        return 2
    return 0


def _stage_from_file(accelerate_config: str) -> int | None:
    import yaml

    candidates = [Path(accelerate_config).expanduser(), Path(__file__).resolve().parents[1] / accelerate_config]
    for path in candidates:
        if not path.is_file():
            continue
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError):
            return None
        if str(data.get("distributed_type", "")).upper() != "DEEPSPEED":
            return 0
        ds = data.get("deepspeed_config") or {}
        if "zero_stage" in ds:
            return int(ds["zero_stage"])
        ds_file = ds.get("deepspeed_config_file")
        if ds_file:
            for base in (Path.cwd(), path.parent, path.parent.parent):
                ds_path = base / ds_file
                if ds_path.is_file():
                    try:
                        return int(json.loads(ds_path.read_text()).get("zero_optimization", {}).get("stage", 0))
                    except (OSError, ValueError):
                        return None
        return None
    return None


@dataclasses.dataclass(frozen=True)
class _Layout:
    placement: str
    backend: str
    tp: int
    training_ranks: int
    generation_batch: int
    server_utilization: float | None


def _layout(recipe: Any, nodes: int, gpus_per_node: int, tensor_parallel_size: int | None,
            gpu_memory_gb: float, placement: str | None = None) -> _Layout:
    """Placement, training ranks and tensor-parallel size from reasoner.topology (the launchers' source of truth)."""
    from reasoner import topology

    grpo, generation = dict(recipe.grpo), dict(recipe.generation)
    plan = topology.plan(
        env={},
        gpus_per_node=gpus_per_node,
        nodes=nodes,
        recipe_generation=generation,
        per_device_train_batch_size=int(grpo.get("per_device_train_batch_size", 8)),
        gradient_accumulation_steps=int(grpo.get("gradient_accumulation_steps", 1)),
        steps_per_generation=grpo.get("steps_per_generation"),
        generation_batch_size=grpo.get("generation_batch_size"),
        num_generations=int(grpo.get("num_generations", 8)),
        model=recipe.model.get("id"),
        model_revision=recipe.model.get("revision"),
        model_dtype=recipe.model.get("dtype"),
        accelerate_config=getattr(recipe, "accelerate_config", None),
        tensor_parallel_size=tensor_parallel_size,
        gpu_memory_gb=gpu_memory_gb,
        placement=placement,
    )
    utilization = None
    command = list(plan.vllm_command)
    if command:
        utilization = VLLM_SERVE_DEFAULT_UTILIZATION
        if "--gpu-memory-utilization" in command:
            utilization = float(command[command.index("--gpu-memory-utilization") + 1])
    return _Layout(plan.placement, plan.backend, plan.tensor_parallel_size, plan.num_processes,
                   plan.generation_batch_size, utilization)


def _precision(recipe: Any, shape: ModelShape, on_gpu: bool) -> tuple[int, bool, int]:
    """(parameter bytes, mixed precision on, activation bytes) for this recipe on this device kind."""
    dtype = str(recipe.model.get("dtype") or "auto")
    if dtype == "auto":
        dtype = shape.torch_dtype
    param_bytes = DTYPE_BYTES.get(dtype, 4)
    grpo = recipe.grpo
    fp16 = bool(grpo.get("fp16", False))
    bf16 = grpo.get("bf16")
    mixed = on_gpu and (fp16 or (bf16 if bf16 is not None else True))  # TRL 1.x: bf16 unless fp16
    act_bytes = 2 if (mixed or param_bytes == 2) else 4
    return param_bytes, mixed, act_bytes


def estimate(
    recipe: Any,
    *,
    nodes: int,
    gpus_per_node: int,
    gpu_memory_gb: float = DEFAULT_GPU_MEMORY_GB,
    zero_stage: int | None = None,
    tensor_parallel_size: int | None = None,
    activation_checkpointing: bool | None = None,
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
    host_memory_gb: float | None = None,
    shape: ModelShape | None = None,
    placement: str | None = None,
) -> MemoryPlan:
    """Memory per training GPU and per generation GPU for ``recipe`` on ``nodes`` x ``gpus_per_node``.

    ``zero_stage`` defaults to the recipe's accelerate config (zero2 -> 2, zero3 -> 3, ddp/single -> 0);
    placement and tensor-parallel size come from reasoner.topology. ``prompt_tokens``/``completion_tokens``
    default to the recipe's limits (``dataset.max_prompt_tokens``, ``max_completion_length``): an upper bound.
    ``gpus_per_node=0`` plans a CPU run (per process; a verdict only with ``host_memory_gb``).
    ``shape`` skips the model lookup (the search sizes one model many times); ``placement`` overrides the
    recipe's ``generation.placement`` (``auto`` lets the topology choose by layout).
    Raises UserError for layouts reasoner.topology refuses.
    """
    if shape is None:
        shape = model_shape(recipe.model["id"], recipe.model.get("revision"))
    on_gpu = gpus_per_node > 0
    stage = zero_stage_of(getattr(recipe, "accelerate_config", None)) if zero_stage is None else int(zero_stage)
    if stage not in ZERO_STAGES:
        raise UserError(f"ZeRO stage {stage} is not planned for; use 0 (single/DDP), 2 or 3")
    layout = _layout(recipe, nodes, gpus_per_node, tensor_parallel_size, gpu_memory_gb, placement)
    grpo = recipe.grpo
    param_bytes, mixed, act_bytes = _precision(recipe, shape, on_gpu)

    prompt = int(prompt_tokens if prompt_tokens is not None else (recipe.dataset.get("max_prompt_tokens") or 512))
    completion = int(completion_tokens if completion_tokens is not None else grpo.get("max_completion_length", 256))
    seq = prompt + completion
    batch = int(grpo.get("per_device_train_batch_size", 8))
    checkpointing = bool(grpo.get("activation_checkpointing", grpo.get("gradient_checkpointing", False))) \
        if activation_checkpointing is None else activation_checkpointing
    ranks = layout.training_ranks
    beta = float(grpo.get("beta", 0.0) or 0.0)
    notes: list[str] = [f"model {shape.name}: {shape.params / 1e6:,.1f}M parameters ({shape.source})"]

    # --- persistent state -----------------------------------------------------------------------
    states = model_states_bytes(shape.params, zero_stage=stage, ranks=ranks, param_bytes=param_bytes,
                                mixed_precision=mixed, largest_layer_params=shape.largest_layer_params)
    dtype_name = {2: "16-bit", 4: "fp32"}[param_bytes]
    if stage == 0:
        w_note, g_note = f"{dtype_name}, whole", f"{dtype_name}" + (", + DDP bucket copy" if ranks > 1 else "")
        o_note = f"AdamW exp_avg + exp_avg_sq in {dtype_name} (torch keeps the parameter dtype; no master copy)"
    elif mixed:
        w_note = "16-bit, whole" if stage == 2 else f"16-bit, 1/{ranks} shard"
        g_note = f"16-bit + fp32, 1/{ranks} shard" if stage == 2 else f"fp32, 1/{ranks} shard"
        o_note = f"fp32 master weights + AdamW states, 1/{ranks} shard (DeepSpeed)"
    else:
        w_note = "fp32, whole" if stage == 2 else f"fp32, 1/{ranks} shard"
        g_note, o_note = f"fp32, 1/{ranks} shard", f"AdamW states fp32, 1/{ranks} shard"
    items = [Item("weights", states["weights"], w_note), Item("gradients", states["gradients"], g_note),
             Item("optimizer states", states["optimizer"], o_note)]
    if "gathered layer" in states:
        items.append(Item("ZeRO-3 gathered layer", states["gathered layer"], "4 bytes x largest layer (DeepSpeed)"))
    if beta > 0:
        ref = param_bytes * shape.params // (ranks if stage == 3 else 1)
        items.append(Item("reference model", ref, f"beta {beta:g}: {dtype_name}" + (f", 1/{ranks} shard" if stage == 3 else ", whole")))

    # --- transient phases: the largest one counts -------------------------------------------------
    def activations(ckpt: bool) -> int:
        return sum(training_activation_bytes(shape, batch=batch, seq_len=seq, scored_tokens=completion,
                                             act_bytes=act_bytes, residual_bytes=param_bytes, checkpointing=ckpt,
                                             compact_head=on_gpu).values())

    act_total, other = activations(checkpointing), activations(not checkpointing)
    phases = {"training": (act_total, f"{batch} x {seq} tokens, checkpointing {'on' if checkpointing else 'off'} "
                                      f"({'off' if checkpointing else 'on'}: {gib(other)} GiB)")}
    steps = int(grpo.get("steps_per_generation") or grpo.get("gradient_accumulation_steps", 1))
    per_process_generation = max(1, layout.generation_batch // max(1, ranks)) if layout.generation_batch else batch * steps
    if layout.backend == "transformers":
        kv = generation_kv_bytes(shape, sequences=per_process_generation, seq_len=seq, dtype_bytes=act_bytes)
        prefill = per_process_generation * prompt * (shape.hidden_size + 2 * shape.intermediate_size) * act_bytes
        phases["generation"] = (kv + prefill, f"transformers generate: KV cache of {per_process_generation} x {seq} tokens")
    name, (size, note) = max(phases.items(), key=lambda kv_: kv_[1][0])
    label = "activations" if name == "training" else "generation KV cache"
    items.append(Item(label, size, note + ("" if len(phases) == 1 else
                                          "; largest of: " + ", ".join(f"{k} {gib(v[0])}" for k, v in phases.items()))))

    gen_budget: Budget | None = None
    queued = False
    tp = max(1, layout.tp)
    vllm_dtype = param_bytes
    if layout.backend == "vllm":
        colocated = layout.placement == "colocate"
        utilization = float(recipe.generation.get("gpu_memory_utilization", 0.3)) if colocated \
            else float(layout.server_utilization or VLLM_SERVE_DEFAULT_UTILIZATION)
        sequences = tp * per_process_generation if colocated else layout.generation_batch
        kv_total = sequences * seq * kv_bytes_per_token(shape, vllm_dtype, tp)
        capacity = int(utilization * gpu_memory_gb * GIB)
        runtime = (VLLM_FIXED_BYTES
                   + VLLM_MAX_BATCHED_TOKENS * (shape.hidden_size + 2 * shape.intermediate_size // tp) * 2 * vllm_dtype
                   + VLLM_MAX_NUM_SEQS * shape.vocab_size * 4)
        weights = vllm_dtype * shape.params // tp
        gen_items = (Item("weights", weights, f"1/{tp} (tensor parallel)" if tp > 1 else "whole"),
                     Item("vLLM runtime", runtime, "CUDA context and graphs, profile activations, sampler"),
                     Item("KV cache", kv_total, f"{sequences} sequences x {seq} tokens at once"))
        room = capacity - weights - runtime
        one_sequence = seq * kv_bytes_per_token(shape, vllm_dtype, tp)
        gen_notes: list[str] = []
        queued = room < kv_total
        if room >= kv_total:
            pass
        elif room >= one_sequence:
            # vLLM starts and queues: the KV cache is what is left, not a failure.
            gen_items = gen_items[:2] + (Item("KV cache", room, f"{room // one_sequence} of {sequences} sequences at once: "
                                             "vLLM queues the rest (slower, not an error)"),)
            gen_notes.append(f"the whole batch needs {gib(kv_total)} GiB of KV cache; raise "
                             "gpu_memory_utilization or tensor_parallel_size to generate it in one wave")
        role = "generation GPU" if not colocated else "colocated vLLM"
        gen_budget = Budget(role, gen_items, capacity,
                            tuple(gen_notes) + (f"vLLM gpu_memory_utilization {utilization:g} of {gpu_memory_gb:g} GiB",))
        if colocated:
            items.append(Item("colocated vLLM", capacity, f"gpu_memory_utilization {utilization:g} reserved by vLLM"))

    if on_gpu:
        base = sum(item.bytes for item in items)
        items.append(Item("CUDA context + workspaces + fragmentation", CUDA_OVERHEAD_BYTES + int(FRAGMENTATION * base),
                          f"{gib(CUDA_OVERHEAD_BYTES)} GiB + {FRAGMENTATION:.0%}"))
        train_capacity: int | None = int(gpu_memory_gb * GIB)
        role = "training GPU"
    else:
        train_capacity = int(host_memory_gb * GIB) if host_memory_gb else None
        role = "training process"
    training = Budget(role, tuple(items), train_capacity)

    return MemoryPlan(
        recipe=getattr(recipe, "name", "recipe"), model=shape, nodes=nodes, gpus_per_node=gpus_per_node,
        gpu_memory_gb=gpu_memory_gb, zero_stage=stage, placement=layout.placement, backend=layout.backend,
        tensor_parallel_size=layout.tp, training_ranks=ranks, activation_checkpointing=checkpointing,
        activations_other_mode=other, training=training, generation=gen_budget, notes=tuple(notes),
        generation_queued=queued,
    )


# ---------------------------------------------------------------------------------------------
# Search and output


def smallest_plan(recipe: Any, gpu_memory_gb: float = DEFAULT_GPU_MEMORY_GB, max_nodes: int = 64, *,
                  node_gpus: int = 8) -> MemoryPlan:
    """The plan of the layout with the fewest GPUs that fits (see :func:`smallest_layout`)."""
    shape = model_shape(recipe.model["id"], recipe.model.get("revision"))
    single = [g for g in GPU_COUNTS if g < node_gpus] + [node_gpus]
    candidates = sorted({(g, 1, g) for g in single} | {(n * node_gpus, n, node_gpus) for n in range(2, max_nodes + 1)})
    vllm = recipe.generation.get("backend") == "vllm"
    own = recipe.generation.get("placement") or "auto"
    placements = [own] if own == "auto" or not vllm else [own, "auto"]
    for _total, nodes, gpus in candidates:
        for where in placements:
            for stage in ZERO_STAGES:
                fitting: list[MemoryPlan] = []
                for tp in ([t for t in GPU_COUNTS if t <= gpus] if vllm else [None]):
                    try:
                        plan = estimate(recipe, nodes=nodes, gpus_per_node=gpus, gpu_memory_gb=gpu_memory_gb,
                                        zero_stage=stage, tensor_parallel_size=tp, shape=shape, placement=where)
                    except UserError:
                        continue
                    if plan.fits:
                        fitting.append(plan)
                if fitting:
                    # Same GPUs either way: prefer a tensor-parallel size whose KV cache holds the whole batch.
                    whole = [p for p in fitting if not p.generation_queued]
                    return (whole or fitting)[0]
    raise UserError(f"recipe {getattr(recipe, 'name', '?')} fits no layout of up to {max_nodes} nodes of "
                    f"{node_gpus} GPUs with {gpu_memory_gb:g} GiB each; use a smaller model or shorter sequences")


def smallest_layout(recipe: Any, gpu_memory_gb: float = DEFAULT_GPU_MEMORY_GB, max_nodes: int = 64, *,
                    node_gpus: int = 8) -> tuple[int, int, int, int]:
    """The layout with the fewest GPUs that fits: ``(nodes, gpus_per_node, zero_stage, tensor_parallel_size)``.

    One node is tried with 1, 2, 4 ... ``node_gpus`` GPUs, several nodes with ``node_gpus`` each (clusters
    are built of whole nodes). For each layout the recipe's own generation placement is tried first, then
    the topology's choice for that layout (``auto``). Ties go to fewer nodes, then the lower ZeRO stage (less
    communication), then the smaller tensor-parallel size among those whose KV cache holds the whole batch.
    Layouts reasoner.topology refuses are skipped. Raises UserError when nothing up to ``max_nodes`` fits.
    """
    plan = smallest_plan(recipe, gpu_memory_gb, max_nodes, node_gpus=node_gpus)
    return plan.nodes, plan.gpus_per_node, plan.zero_stage, plan.tensor_parallel_size


def format_memory_plan(plan: MemoryPlan) -> str:
    """The plan as a table: one block per device kind, one line per item, then the verdict.

    Sizes are GiB, or MiB for plans under 1 GiB (the tiny CPU model), so no line reads 0.00.
    """
    unit, scale = ("GiB", GIB) if plan.training.total >= GIB else ("MiB", 1 << 20)

    def size(value: int | float) -> str:
        return f"{value / scale:.2f}"

    gen = f"{plan.backend}, placement {plan.placement}" + (f", tp {plan.tensor_parallel_size}" if plan.backend == "vllm" else "")
    device = f"{plan.gpus_per_node} GPU(s) of {plan.gpu_memory_gb:g} GiB" if plan.on_gpu else "CPU"
    lines = [f"memory plan: {plan.recipe} on {plan.nodes} node(s) x {device}; {plan.training_ranks} training rank(s), "
             f"ZeRO-{plan.zero_stage}; generation {gen}"]
    width = 44
    for budget in (plan.training, plan.generation):
        if budget is None:
            continue
        per = "per GPU" if plan.on_gpu else "RAM"
        lines.append("")
        lines.append(f"{budget.role + ' (' + per + ')':<{width}} {unit:>8}   how")
        for item in budget.items:
            lines.append(f"  {item.name:<{width - 2}} {size(item.bytes):>8}   {item.note}")
        lines.append(f"  {'total':<{width - 2}} {size(budget.total):>8}")
        if budget.capacity is not None:
            word = "headroom" if budget.fits else "short by"
            lines.append(f"  {'capacity':<{width - 2}} {size(budget.capacity):>8}   {word} {size(abs(budget.headroom or 0))} {unit}")
        for note in budget.notes:
            lines.append(f"  note: {note}")
    lines.append("")
    for note in plan.notes:
        lines.append(f"note: {note}")
    lines.append(f"verdict: {plan.verdict()}")
    return "\n".join(lines)


def refusal(recipe: Any, nodes: int, gpus_per_node: int, gpu_memory_gb: float = DEFAULT_GPU_MEMORY_GB,
            zero_stage: int | None = None) -> str | None:
    """One line saying why this layout cannot run the recipe and what would, or None when it fits."""
    try:
        plan = estimate(recipe, nodes=nodes, gpus_per_node=gpus_per_node, gpu_memory_gb=gpu_memory_gb,
                        zero_stage=zero_stage)
    except UserError as exc:
        return str(exc)
    if plan.fits:
        return None
    hint = _suggestion(recipe, gpu_memory_gb)
    return f"{plan.recipe} does not fit {nodes} node(s) x {gpus_per_node} GPU(s) of {gpu_memory_gb:g} GiB " \
           f"with ZeRO-{plan.zero_stage}: {plan.verdict().split(': ', 1)[1]}; {hint}"


def _suggestion(recipe: Any, gpu_memory_gb: float) -> str:
    try:
        plan = smallest_plan(recipe, gpu_memory_gb)
    except UserError as exc:
        return str(exc)
    config = {0: "single_gpu.yaml or ddp.yaml", 2: "zero2.yaml", 3: "zero3.yaml"}[plan.zero_stage]
    flags = f"--accelerate_config accelerate_configs/{config}"
    if plan.backend == "vllm":
        flags += f" --generation.placement {plan.placement} --generation.tensor_parallel_size {plan.tensor_parallel_size}"
    return (f"smallest layout that fits: {plan.nodes} node(s) x {plan.gpus_per_node} GPU(s), ZeRO-{plan.zero_stage} "
            f"({flags})")


def memory_report(recipe: Any, nodes: int, gpus_per_node: int, gpu_memory_gb: float = DEFAULT_GPU_MEMORY_GB) -> str:
    """What ``reasoner plan`` prints under the topology: the memory table, the verdict, and a fix when it does not fit."""
    try:
        plan = estimate(recipe, nodes=nodes, gpus_per_node=gpus_per_node, gpu_memory_gb=gpu_memory_gb)
    except UserError as exc:
        return f"memory: not estimated: {exc}"
    text = format_memory_plan(plan)
    if not plan.fits and plan.on_gpu:
        text += "\n" + _suggestion(recipe, gpu_memory_gb)
    return text
