"""Memory of a LoRA run: one frozen base copy, the adapter, and the adapter's gradients and optimizer states.

With ``peft.r`` set only the adapter trains: the base is loaded once in ``model.dtype`` (reasoner.train.precision),
frozen, and doubles as the reference model (TRL disables the adapter to compute reference log-probs), so no
second copy is counted. The adapter's weights, gradients and AdamW states follow the same rules as a whole
model's (reasoner.plan.formulas) with the adapter's parameter count: PEFT keeps the adapter in float32 without
DeepSpeed; DeepSpeed trains it in 16 bits over its own float32 master copy.

Under ZeRO-3 with vLLM, TRL 1.16 gathers every parameter at once on each training rank to merge the adapter
before a weight sync (trl/generation/vllm_generation.py ``_iter_named_params``): a whole 16-bit model per GPU,
counted as a transient phase beside the training activations.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reasoner.plan import formulas
from reasoner.plan.budget import Item
from reasoner.plan.shapes import ModelShape

# PEFT's default targets for Qwen2/Llama (peft.utils.constants, TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING).
DEFAULT_TARGETS = ("q_proj", "v_proj")
ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def projection_dims(shape: ModelShape) -> dict[str, tuple[int, int]]:
    """(in, out) features of each linear projection of a Qwen2/Llama decoder layer."""
    h, q, kv, i = shape.hidden_size, shape.q_dim, shape.kv_dim, shape.intermediate_size
    return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
            "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}


def targets(peft: Mapping[str, Any]) -> tuple[str, ...]:
    """The projections an adapter wraps: ``target_modules`` as PEFT reads it (a name list, ``all-linear``, or a
    regular expression, which is matched against each projection's name), else PEFT's default for Qwen2."""
    import re

    wanted = peft.get("target_modules")
    if wanted is None:
        return DEFAULT_TARGETS
    if isinstance(wanted, str):
        if wanted == "all-linear":
            return ALL_LINEAR
        return tuple(name for name in ALL_LINEAR if re.search(wanted, f"model.layers.0.self_attn.{name}")
                     or re.search(wanted, f"model.layers.0.mlp.{name}"))
    return tuple(name for name in ALL_LINEAR if any(str(w).split(".")[-1] == name for w in wanted))


def adapter_params(shape: ModelShape, peft: Mapping[str, Any]) -> int:
    """Trainable parameters of the adapter: r x (in + out) per wrapped projection and layer (DoRA adds a
    magnitude vector of ``out``)."""
    r = int(peft["r"])
    dims = projection_dims(shape)
    per_layer = sum(r * (dims[name][0] + dims[name][1]) + (dims[name][1] if peft.get("use_dora") else 0)
                    for name in targets(peft))
    layers = peft.get("layers_to_transform")
    count = len(layers) if isinstance(layers, list) else (1 if isinstance(layers, int) else shape.num_layers)
    return per_layer * count


def state_items(shape: ModelShape, peft: Mapping[str, Any], *, zero_stage: int, ranks: int, base_bytes: int,
                mixed: bool) -> list[Item]:
    """Weights (frozen base + adapter), the adapter's gradients and optimizer states, per training GPU."""
    adapter = adapter_params(shape, peft)
    n = max(1, ranks)
    base = base_bytes * shape.params // (n if zero_stage == 3 else 1)
    if zero_stage == 0:
        states = formulas.model_states_bytes(adapter, zero_stage=0, ranks=ranks, param_bytes=4, mixed_precision=False)
        how = "float32 (PEFT)"
    else:
        states = formulas.model_states_bytes(adapter, zero_stage=zero_stage, ranks=ranks, param_bytes=2,
                                             mixed_precision=True)
        how = "16-bit + DeepSpeed's float32 master copy"
    share = f", 1/{n} shard" if zero_stage == 3 else ", whole"
    items = [
        Item("weights", base + states["weights"],
             f"frozen base {base_bytes * 8}-bit{share} (also the reference model) + adapter "
             f"{adapter / 1e6:,.1f}M params r={peft['r']}, {how}"),
        Item("gradients", states["gradients"], "adapter only"),
        Item("optimizer states", states["optimizer"], "AdamW on the adapter only"),
    ]
    if zero_stage == 3:
        items.append(Item("ZeRO-3 gathered layer", 4 * shape.largest_layer_params, "4 bytes x largest layer (DeepSpeed)"))
    element = 2 if (mixed or zero_stage > 0) else 4
    for name, size in formulas.zero_buffer_bytes(shape.params, zero_stage=zero_stage, element_bytes=element).items():
        if name == "reduce bucket":
            size = min(size, adapter * element)  # gradients of the adapter only
        items.append(Item(f"ZeRO {name}", size, f"DeepSpeed default {formulas.ZERO_BUFFER_SETTINGS[name]} x {element} bytes"))
    return items


def weight_sync_phase(shape: ModelShape, *, zero_stage: int, ranks: int, base_bytes: int) -> tuple[int, str] | None:
    """The whole model TRL gathers on each training GPU to merge the adapter for vLLM under ZeRO-3, beyond
    the shard already held; None when no such gather happens."""
    if zero_stage != 3:
        return None
    extra = base_bytes * shape.params - base_bytes * shape.params // max(1, ranks)
    return extra, "vLLM weight sync: TRL gathers the whole model on every rank to merge the adapter (ZeRO-3)"
