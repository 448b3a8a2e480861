"""Will a recipe fit its layout? Memory per training GPU, per generation GPU, and on rank zero's host.

A GRPO run that does not fit its GPUs fails minutes into the job (after the queue, the download and the model
load) with an out-of-memory error that names no fix; the launchers stop before that on this estimate, so it
counts what really runs, on the layout reasoner.topology computed (placement, processes, tensor-parallel size,
the server's ``--gpu-memory-utilization``), which is passed in:

* per training GPU: weights, gradients and optimizer states (reasoner.plan.formulas), DeepSpeed's buffers, the
  reference model when ``beta > 0``, the largest transient phase (activations of one micro-batch, or the
  transformers backend's KV cache), a colocated vLLM's reservation, and CUDA context plus fragmentation;
* per generation GPU: weights / tensor-parallel size, vLLM's runtime and the KV cache of the generation batch
  against ``gpu_memory_utilization`` (a short KV cache queues sequences: slower, not a failure);
* host memory of rank zero's node: loading (each process reads the whole model unless ZeRO-3 partitions it
  while loading) or saving (rank zero gathers the whole 16-bit model on the CPU), plus each process's runtime.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from reasoner.errors import UserError
from reasoner.lora.config import enabled as lora_enabled
from reasoner.plan import formulas, lora
from reasoner.plan.budget import Budget, Item, MemoryPlan
from reasoner.plan.formulas import GIB, ZERO_STAGES, gib
from reasoner.plan.settings import Precision, activation_checkpointing, precision, zero_stage_of
from reasoner.plan.shapes import ModelShape, model_shape
from reasoner.topology import Plan, plan_for_recipe
from reasoner.topology.placement import DEFAULT_GPU_MEMORY_GB
from reasoner.topology.server import server_flag

# trl vllm-serve's default gpu_memory_utilization, for a server command that does not state one.
VLLM_SERVE_DEFAULT_UTILIZATION = 0.9
# Host memory each training process holds besides model copies: Python, torch, the CUDA runtime, data loading.
HOST_PROCESS_BYTES = 3 * GIB


@dataclasses.dataclass(frozen=True)
class _Run:
    """The recipe's numbers the estimate uses, resolved once."""

    shape: ModelShape
    stage: int
    precision: Precision
    prompt: int
    completion: int
    batch: int
    checkpointing: bool
    beta: float
    on_gpu: bool
    peft: dict  # the recipe's peft section when it trains a LoRA adapter, else empty (reasoner.plan.lora)

    @property
    def seq(self) -> int:
        return self.prompt + self.completion


def estimate(recipe: Any, *, nodes: int, gpus_per_node: int, gpu_memory_gb: float = DEFAULT_GPU_MEMORY_GB,
             zero_stage: int | None = None, tensor_parallel_size: int | None = None,
             activation_checkpointing: bool | None = None, prompt_tokens: int | None = None,
             completion_tokens: int | None = None, host_memory_gb: float | None = None,
             shape: ModelShape | None = None, placement: str | None = None) -> MemoryPlan:
    """:func:`estimate_for_layout` on the layout reasoner.topology gives ``nodes`` x ``gpus_per_node`` with no
    environment (the search and the tests size hypothetical layouts). ``placement`` and ``tensor_parallel_size``
    override the recipe's. Raises UserError for layouts reasoner.topology refuses."""
    layout = plan_for_recipe(recipe, env={}, gpus_per_node=gpus_per_node, nodes=nodes, gpu_memory_gb=gpu_memory_gb,
                             tensor_parallel_size=tensor_parallel_size, placement=placement)
    return estimate_for_layout(recipe, layout, gpu_memory_gb=gpu_memory_gb, zero_stage=zero_stage,
                               activation_checkpointing=activation_checkpointing, prompt_tokens=prompt_tokens,
                               completion_tokens=completion_tokens, host_memory_gb=host_memory_gb, shape=shape)


def estimate_for_layout(recipe: Any, layout: Plan, *, gpu_memory_gb: float = DEFAULT_GPU_MEMORY_GB,
                        zero_stage: int | None = None, activation_checkpointing: bool | None = None,
                        prompt_tokens: int | None = None, completion_tokens: int | None = None,
                        host_memory_gb: float | None = None, shape: ModelShape | None = None) -> MemoryPlan:
    """Memory per device for ``recipe`` on ``layout`` (reasoner.topology's plan, overrides included).

    ``zero_stage`` defaults to the recipe's accelerate config; prompt and completion lengths to the recipe's
    limits (an upper bound). On CPU (``gpus_per_node`` 0) the training budget is per process, with a verdict only
    when ``host_memory_gb`` is given.
    """
    run = _resolve(recipe, layout, zero_stage, activation_checkpointing, prompt_tokens, completion_tokens, shape)
    ranks = layout.num_processes
    items = _state_items(run, ranks)
    phase, other = _transient_item(run, layout)
    items.append(phase)
    generation, queued, at_once = _generation_budget(run, recipe, layout, gpu_memory_gb)
    if generation is not None and layout.placement == "colocate":
        items.append(_colocated_item(generation, phase, gpu_memory_gb, bool(recipe.grpo.get("vllm_enable_sleep_mode"))))
    if run.on_gpu:
        base = sum(item.bytes for item in items)
        items.append(Item("CUDA context + workspaces + fragmentation",
                          formulas.CUDA_OVERHEAD_BYTES + int(formulas.FRAGMENTATION * base),
                          f"{gib(formulas.CUDA_OVERHEAD_BYTES)} GiB + {formulas.FRAGMENTATION:.0%}"))
        training = Budget("training GPU", tuple(items), int(gpu_memory_gb * GIB))
    else:
        training = Budget("training process", tuple(items), int(host_memory_gb * GIB) if host_memory_gb else None)
    return MemoryPlan(
        recipe=getattr(recipe, "name", "recipe"), model=run.shape, nodes=layout.nodes,
        gpus_per_node=layout.gpus_per_node, gpu_memory_gb=gpu_memory_gb, zero_stage=run.stage,
        placement=layout.placement, backend=layout.backend, tensor_parallel_size=layout.tensor_parallel_size,
        training_ranks=ranks, activation_checkpointing=run.checkpointing, activations_other_mode=other,
        training=training, generation=generation,
        notes=(f"model {run.shape.name}: {run.shape.params / 1e6:,.1f}M parameters ({run.shape.source})",),
        generation_queued=queued, generation_at_once=at_once, host=_host_budget(run, layout, host_memory_gb) if run.on_gpu else None,
    )


def _resolve(recipe: Any, layout: Plan, zero_stage: int | None, checkpointing: bool | None,
             prompt_tokens: int | None, completion_tokens: int | None, shape: ModelShape | None) -> _Run:
    shape = shape or model_shape(recipe.model.id, recipe.model.revision)
    stage = zero_stage_of(getattr(recipe, "accelerate_config", None)) if zero_stage is None else int(zero_stage)
    if stage not in ZERO_STAGES:
        raise UserError(f"ZeRO stage {stage} is not planned for; use 0 (single/DDP), 2 or 3")
    grpo = recipe.grpo
    on_gpu = layout.gpus_per_node > 0
    peft = dict(getattr(recipe, "peft", None) or {}) if lora_enabled(getattr(recipe, "peft", None)) else {}
    return _Run(
        shape=shape, stage=stage, peft=peft,
        precision=precision(recipe.model, grpo, shape, zero_stage=stage, on_gpu=on_gpu, lora=bool(peft)),
        prompt=int(prompt_tokens if prompt_tokens is not None else (recipe.dataset.max_prompt_tokens or 512)),
        completion=int(completion_tokens if completion_tokens is not None else grpo.get("max_completion_length", 256)),
        batch=int(grpo.get("per_device_train_batch_size", 8)),
        checkpointing=activation_checkpointing(grpo) if checkpointing is None else checkpointing,
        beta=float(grpo.get("beta", 0.0) or 0.0), on_gpu=on_gpu,
    )


def _state_items(run: _Run, ranks: int) -> list[Item]:
    """Weights, gradients, optimizer states, DeepSpeed's buffers and the reference model, per training GPU."""
    p, stage, prec = run.shape.params, run.stage, run.precision
    if run.peft:
        return lora.state_items(run.shape, run.peft, zero_stage=stage, ranks=ranks, base_bytes=prec.param_bytes,
                                mixed=prec.mixed)
    states = formulas.model_states_bytes(p, zero_stage=stage, ranks=ranks, param_bytes=prec.param_bytes,
                                         mixed_precision=prec.mixed, largest_layer_params=run.shape.largest_layer_params)
    dtype_name = {2: "16-bit", 4: "fp32"}[prec.param_bytes]
    if stage == 0:
        notes = (f"{dtype_name}, whole", dtype_name + (", + DDP bucket copy" if ranks > 1 else ""),
                 f"AdamW exp_avg + exp_avg_sq in {dtype_name} (torch keeps the parameter dtype)")
    elif prec.mixed:
        notes = ("16-bit, whole" if stage == 2 else f"16-bit, 1/{ranks} shard",
                 f"16-bit + fp32, 1/{ranks} shard" if stage == 2 else f"fp32, 1/{ranks} shard",
                 f"fp32 master weights + AdamW states, 1/{ranks} shard (DeepSpeed)")
    else:
        notes = ("fp32, whole" if stage == 2 else f"fp32, 1/{ranks} shard", f"fp32, 1/{ranks} shard",
                 f"AdamW states fp32, 1/{ranks} shard")
    items = [Item("weights", states["weights"], notes[0]), Item("gradients", states["gradients"], notes[1]),
             Item("optimizer states", states["optimizer"], notes[2])]
    if "gathered layer" in states:
        items.append(Item("ZeRO-3 gathered layer", states["gathered layer"], "4 bytes x largest layer (DeepSpeed)"))
    element = 2 if prec.mixed else prec.param_bytes
    for name, size in formulas.zero_buffer_bytes(p, zero_stage=stage, element_bytes=element).items():
        items.append(Item(f"ZeRO {name}", size, f"DeepSpeed default {formulas.ZERO_BUFFER_SETTINGS[name]} x {element} bytes"))
    if run.beta > 0:
        ref = prec.param_bytes * p // (ranks if stage == 3 else 1)
        items.append(Item("reference model", ref, f"beta {run.beta:g}: {dtype_name}"
                          + (f", 1/{ranks} shard" if stage == 3 else ", whole")))
    return items


def _transient_item(run: _Run, layout: Plan) -> tuple[Item, int]:
    """The largest of training activations and in-process generation; and activations in the other mode."""
    def activations(ckpt: bool) -> int:
        return sum(formulas.training_activation_bytes(
            run.shape, batch=run.batch, seq_len=run.seq, scored_tokens=run.completion,
            act_bytes=run.precision.activation_bytes, residual_bytes=run.precision.param_bytes, checkpointing=ckpt,
            compact_head=run.on_gpu).values())

    act, other = activations(run.checkpointing), activations(not run.checkpointing)
    phases = {"training": (act, f"{run.batch} x {run.seq} tokens, checkpointing {'on' if run.checkpointing else 'off'} "
                                f"({'off' if run.checkpointing else 'on'}: {gib(other)} GiB)")}
    if layout.backend == "transformers":
        sequences = max(1, layout.generation_batch_size // max(1, layout.num_processes))
        act_bytes = run.precision.activation_bytes
        size = formulas.generation_kv_bytes(run.shape, sequences=sequences, seq_len=run.seq, dtype_bytes=act_bytes)
        size += sequences * run.prompt * (run.shape.hidden_size + 2 * run.shape.intermediate_size) * act_bytes
        note = f"transformers generate: KV cache of {sequences} x {run.seq} tokens"
        if run.stage == 3:  # TRL gathers the whole model for generate (ds3_gather_for_generation)
            size += run.precision.param_bytes * run.shape.params
            note += " + the whole model gathered (ZeRO-3)"
        phases["generation"] = (size, note)
    sync = lora.weight_sync_phase(run.shape, zero_stage=run.stage, ranks=layout.num_processes,
                                  base_bytes=run.precision.param_bytes) if run.peft and layout.backend == "vllm" else None
    if sync is not None:
        phases["weight sync"] = sync
    name, (size, note) = max(phases.items(), key=lambda kv: kv[1][0])
    label = {"training": "activations", "generation": "generation KV cache"}.get(name, "gathered model (weight sync)")
    if len(phases) > 1:
        note += "; largest of: " + ", ".join(f"{k} {gib(v[0])}" for k, v in phases.items())
    return Item(label, size, note), other


def _colocated_item(generation: Budget, phase: Item, gpu_memory_gb: float, sleep: bool) -> Item:
    """What a colocated vLLM adds to a training GPU: its whole reservation, or, in sleep mode (TRL's
    ``vllm_enable_sleep_mode``: weights and KV cache released while training), only what it needs beyond the
    training phase's transient memory, since the two phases never hold memory at once."""
    reserved = generation.capacity or 0
    note = f"gpu_memory_utilization {reserved / (gpu_memory_gb * GIB):g} reserved by vLLM"
    if not sleep:
        return Item("colocated vLLM", reserved, note)
    return Item("colocated vLLM", max(0, reserved - phase.bytes),
                note + f" while generating, released while training (sleep mode): only its excess over "
                       f"{phase.name} counts")


def _generation_budget(run: _Run, recipe: Any, layout: Plan,
                       gpu_memory_gb: float) -> tuple[Budget | None, bool, int]:
    """The vLLM engine's budget (server GPU or colocated share), whether its KV cache queues sequences, and how
    many sequences it holds at once."""
    if layout.backend != "vllm":
        return None, False, 0
    colocated = layout.placement == "colocate"
    tp = max(1, layout.tensor_parallel_size)
    if colocated:
        utilization = float(recipe.generation.gpu_memory_utilization)
        sequences = tp * max(1, layout.generation_batch_size // max(1, layout.num_processes))
    else:
        utilization = float(server_flag(layout.server_args, "--gpu-memory-utilization") or VLLM_SERVE_DEFAULT_UTILIZATION)
        sequences = layout.generation_batch_size
    dtype = run.precision.served_bytes
    per_token = formulas.kv_bytes_per_token(run.shape, dtype, tp)
    kv_total = sequences * run.seq * per_token
    capacity = int(utilization * gpu_memory_gb * GIB)
    runtime = formulas.vllm_runtime_bytes(run.shape, tensor_parallel=tp, dtype_bytes=dtype)
    weights = dtype * run.shape.params // tp
    items = [Item("weights", weights, f"1/{tp} (tensor parallel)" if tp > 1 else "whole"),
             Item("vLLM runtime", runtime, "CUDA context and graphs, profile activations, sampler"),
             Item("KV cache", kv_total, f"{sequences} sequences x {run.seq} tokens at once")]
    room, one_sequence = capacity - weights - runtime, run.seq * per_token
    notes: list[str] = []
    queued = room < kv_total
    if queued and room >= one_sequence:  # vLLM starts and queues: the KV cache is what is left
        items[2] = Item("KV cache", room, f"{room // one_sequence} of {sequences} sequences at once: vLLM queues "
                                          "the rest (slower, not an error)")
        notes.append(f"the whole batch needs {gib(kv_total)} GiB of KV cache; raise gpu_memory_utilization or "
                     "tensor_parallel_size to generate it in one wave")
    notes.append(f"vLLM gpu_memory_utilization {utilization:g} of {gpu_memory_gb:g} GiB")
    role = "colocated vLLM" if colocated else "generation GPU"
    at_once = sequences if not queued else max(0, room // one_sequence)
    return Budget(role, tuple(items), capacity, tuple(notes)), queued, at_once


def _host_budget(run: _Run, layout: Plan, host_memory_gb: float | None) -> Budget:
    """Host memory on rank zero's node: each process's runtime plus the larger of loading and saving."""
    p, prec, per_node = run.shape.params, run.precision, layout.processes_per_node
    copies = 2 if run.beta > 0 and not run.peft else 1  # the policy, and the reference model when beta > 0
    if run.stage == 3:
        load, load_note = 0, "ZeRO-3 partitions the model while loading (zero3_init_flag)"
    else:
        load = per_node * copies * prec.param_bytes * p
        load_note = f"{per_node} process(es) x {copies} whole model(s) on the CPU while loading"
    save_bytes = (2 if run.stage == 3 else prec.param_bytes) * p
    save_note = ("rank zero gathers the whole 16-bit model on the CPU to save it (zero3_save_16bit_model)"
                 if run.stage == 3 else "rank zero copies the model to the CPU to write it")
    phase = Item("loading", load, load_note) if load > save_bytes else Item("saving", save_bytes, save_note)
    items = (Item("training processes", per_node * HOST_PROCESS_BYTES,
                  f"{per_node} x {gib(HOST_PROCESS_BYTES)} GiB: Python, torch, CUDA runtime, data"), phase)
    capacity = int(host_memory_gb * GIB) if host_memory_gb else None
    return Budget("host of rank 0's node", items, capacity)
