"""The recipe's ``peft:`` section: PEFT's ``LoraConfig`` keys, unchanged, plus ``push_merged``.

``peft.r`` set (``--peft.r 8``) turns LoRA on; an empty or absent section trains every weight. Like the ``grpo``
section follows TRL's ``GRPOConfig``, this one follows the installed PEFT's ``LoraConfig`` fields, so a new PEFT
key works without a change here. Keys that describe the saved adapter rather than the training (the base model's
name and revision, the task type, inference mode) are the product's to set and are refused.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from typing import Any, Literal, Mapping, Union

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
    for key, value in checked.items():
        _check_type(key, value)
    build_lora_config(checked)  # PEFT's own checks of the values
    return checked


def _accepts(hint: Any, value: Any) -> bool:
    """Whether ``value`` fits a LoraConfig annotation. Only plain types, literals and lists are judged; anything
    richer (nested configs, dicts) is left to PEFT."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is type(None):
        return value is None
    if origin is Union:
        return any(_accepts(arg, value) for arg in args)
    if origin is Literal:  # a literal like 'pissa_niter_[number of iters]' stands for a prefix
        return value in args or (isinstance(value, str) and any(
            isinstance(a, str) and "[" in a and value.startswith(a.split("[")[0]) for a in args))
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is list:
        return isinstance(value, list) and (not args or all(_accepts(args[0], v) for v in value))
    return True


def _check_type(key: str, value: Any) -> None:
    """Refuse a value of the wrong kind for its LoraConfig field in one line. LoraConfig itself checks only some
    of its fields when built; others (``bias``) fail only once the model has loaded and the adapter is attached."""
    from peft import LoraConfig

    hint = OWN_KEYS.get(key) or typing.get_type_hints(LoraConfig).get(key)
    if hint is None or _accepts(hint, value):
        return
    literals = [a for a in typing.get_args(hint) if isinstance(a, str)]
    wanted = ("one of " + ", ".join(repr(a) for a in literals)) if typing.get_origin(hint) is Literal else \
        str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")
    raise UserError(f"PEFT refused the peft settings: peft.{key} must be {wanted} (LoraConfig's {key}), "
                    f"got {value!r}; fix the peft section")


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
