"""The dtype training loads a model in: float32 master weights with bf16 compute, unless a recipe opts out.

Without DeepSpeed (one GPU, DDP) the optimizer updates the very weights the model was loaded in, and torch's
AdamW keeps its states in their dtype. Loaded in bf16, a weight of magnitude ~1 cannot change by less than
~0.004, so at GRPO learning rates (5e-6) most updates round to nothing. So the model loads in float32, as TRL
does by default, and ``grpo.bf16: true`` runs the forward and backward passes in bf16 autocast.

Under DeepSpeed (ZeRO) with bf16 the engine keeps its own float32 master copy in the optimizer, so the model
loads in ``model.dtype`` (usually bfloat16: half the host memory while loading, and what ZeRO-3 partitions).

With a LoRA adapter (``peft.r``) only the adapter trains: PEFT keeps the adapter in float32 by itself
(``autocast_adapter_dtype``), so the frozen base loads in ``model.dtype`` and a 7B base takes 15 GB, not 30.

``model.fp32_master_weights: false`` opts out: the model then loads in ``model.dtype`` everywhere, which halves
weight, gradient and optimizer memory at the price of the rounding above.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

FP32 = "float32"


def uses_deepspeed(grpo: Mapping[str, Any], env: Mapping[str, str] | None = None) -> bool:
    """Whether this process trains under DeepSpeed: ``accelerate launch`` with a DeepSpeed config, or
    ``grpo.deepspeed`` naming a DeepSpeed config for the Trainer itself."""
    env = os.environ if env is None else env
    return env.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true" or bool(grpo.get("deepspeed"))


def load_dtype(model: Any, *, deepspeed: bool, lora: bool = False) -> str:
    """The dtype to load the model in for training, from the recipe's ``model`` section (a ModelSection)."""
    if model.fp32_master_weights and not deepspeed and not lora:
        return FP32
    return str(model.dtype or "auto")
