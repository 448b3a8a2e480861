"""The recipe's ``peft:`` section: PEFT's ``LoraConfig`` keys, unchanged, plus ``push_merged``.

``peft.r`` set (``--peft.r 8``) turns LoRA on; an empty or absent section trains every weight. Like the ``grpo``
section follows TRL's ``GRPOConfig``, this one follows the installed PEFT's ``LoraConfig`` fields, so a new PEFT
key works without a change here. Keys that describe the saved adapter rather than the training (the base model's
name and revision, the task type, inference mode) are the product's to set and are refused.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any, Mapping

from reasoner.errors import UserError

# Keys of this product, not of LoraConfig.
OWN_KEYS = {"push_merged": bool}
# LoraConfig fields the run sets itself: the adapter records the recipe's model and pinned commit.
RESERVED = {"task_type", "peft_type", "auto_mapping", "peft_version", "base_model_name_or_path", "revision",
            "inference_mode", "runtime_config", "megatron_config", "megatron_core"}


def lora_fields() -> list[str]:
    """The LoraConfig fields a recipe may set, from the installed PEFT."""
    from peft import LoraConfig

    return [f.name for f in dataclasses.fields(LoraConfig) if f.init and f.name not in RESERVED]


def known_keys() -> list[str]:
    return [*lora_fields(), *OWN_KEYS]


def unknown_peft_key(key: str) -> UserError:
    close = difflib.get_close_matches(key.replace("-", "_"), known_keys(), n=1, cutoff=0.6)
    hint = f"did you mean 'peft.{close[0]}'?" if close else "valid keys: " + ", ".join(known_keys())
    return UserError(f"unknown recipe key 'peft.{key}': it is not a field of PEFT's LoraConfig; {hint}")


def check_peft(values: Any) -> dict[str, Any]:
    """The checked section: known keys only, ``r`` present whenever anything is set, and a LoraConfig that PEFT
    itself accepts (so a bad value fails here, in one line, not when the model has loaded)."""
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise UserError("recipe section 'peft' must be a mapping of LoraConfig keys, e.g. peft: {r: 16, lora_alpha: 32}")
    allowed = set(known_keys())
    for key in values:
        if key not in allowed:
            raise unknown_peft_key(str(key))
    checked = {k: v for k, v in values.items() if v is not None}
    if not checked:
        return {}
    if "r" not in checked:
        raise UserError(f"recipe keys {', '.join('peft.' + k for k in checked)} are set but peft.r is not: "
                        "set --peft.r 8 (the adapter's rank) to train a LoRA adapter, or remove the peft section")
    r = checked["r"]
    if isinstance(r, bool) or not isinstance(r, int) or r < 1:
        raise UserError(f"recipe key 'peft.r' must be a positive integer (the adapter's rank), got {r!r}")
    push_merged = checked.get("push_merged", False)
    if not isinstance(push_merged, bool):
        raise UserError(f"recipe key 'peft.push_merged' must be true/false, got {push_merged!r}")
    build_lora_config(checked)  # PEFT's own checks of the values
    return checked


def enabled(peft: Mapping[str, Any] | None) -> bool:
    """Whether the recipe trains an adapter rather than every weight."""
    return bool(peft) and peft.get("r") is not None


def build_lora_config(peft: Mapping[str, Any], *, base: str | None = None, revision: str | None = None):
    """The ``peft.LoraConfig`` of the section (a causal LM's), or UserError naming what PEFT refused."""
    from peft import LoraConfig

    kwargs = {k: v for k, v in peft.items() if k not in OWN_KEYS}
    try:
        return LoraConfig(task_type="CAUSAL_LM", base_model_name_or_path=base, revision=revision, **kwargs)
    except (ValueError, TypeError) as exc:
        raise UserError(f"PEFT refused the peft settings: {str(exc).splitlines()[0]}; fix the peft section") from None
