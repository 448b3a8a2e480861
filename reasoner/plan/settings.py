"""How a recipe trains, as far as memory is concerned: its ZeRO stage, its precision, activation checkpointing.

Each answer follows what the training code and the libraries really do, not what a recipe might mean:

* the ZeRO stage is read from the accelerate config (its DeepSpeed section or DeepSpeed JSON file), else its name;
* without DeepSpeed the model trains in float32 master weights with bf16 autocast unless the recipe sets
  ``model.fp32_master_weights: false`` (as ``reasoner.train.run`` loads it); under DeepSpeed the model is loaded in
  ``model.dtype`` and DeepSpeed keeps its own float32 master copy;
* activation checkpointing is on unless the recipe turns it off: TRL's ``GRPOConfig`` defaults
  ``gradient_checkpointing`` to True.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from reasoner.plan.formulas import DTYPE_BYTES
from reasoner.train.precision import load_dtype
from reasoner.plan.shapes import ModelShape


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
    candidates = [Path(accelerate_config).expanduser(), Path(__file__).resolve().parents[2] / accelerate_config]
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
class Precision:
    """Bytes per element of what training holds."""

    param_bytes: int  # weights, gradients and optimizer states without DeepSpeed; the loaded weights with it
    mixed: bool  # 16-bit compute (autocast without DeepSpeed, DeepSpeed's 16-bit engine with it)
    activation_bytes: int
    served_bytes: int  # what vLLM serves (the model's own dtype)


def precision(model: Any, grpo: Mapping[str, Any], shape: ModelShape, *, zero_stage: int,
              on_gpu: bool, lora: bool = False) -> Precision:
    """The precision this recipe trains in on this device kind: the dtype reasoner.train.precision loads the model in
    (float32 master weights without DeepSpeed unless the recipe opts out), 16-bit compute unless bf16 is off."""
    served = str(model.dtype or "auto")
    if served == "auto":
        served = shape.torch_dtype
    loaded = load_dtype(model, deepspeed=zero_stage > 0, lora=lora)
    param_bytes = DTYPE_BYTES.get(shape.torch_dtype if loaded == "auto" else loaded, 4)
    bf16 = grpo.get("bf16")
    mixed = on_gpu and (bool(grpo.get("fp16", False)) or (bf16 if bf16 is not None else True))  # TRL 1.x: bf16
    return Precision(param_bytes=param_bytes, mixed=mixed, activation_bytes=2 if (mixed or param_bytes == 2) else 4,
                     served_bytes=DTYPE_BYTES.get(served, 4))


def activation_checkpointing(grpo: Mapping[str, Any]) -> bool:
    """Whether training recomputes activations: the recipe's setting, else TRL's default (on)."""
    for key in ("activation_checkpointing", "gradient_checkpointing"):
        if grpo.get(key) is not None:
            return bool(grpo[key])
    return True
