"""Building TRL's ``GRPOConfig``: whatever TRL or transformers refuse there is one line naming the recipe key.

``GRPOConfig`` (through transformers' ``TrainingArguments``) checks many values only when it is built, and not
always with a ``ValueError``: a missing ``accelerator_config`` file is a ``FileNotFoundError``, a string where a
``parallelism_config`` belongs an ``AttributeError``. Each of them is a value the user can fix, so each becomes a
``UserError``; and since the message does not always say which key it was about, the key is found by building
the config again without each key the recipe states.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

from reasoner.errors import UserError

__all__ = ["MACHINE_KEYS", "REFUSALS", "check_portable_grpo_config", "make_grpo_config", "model_init_kwargs"]

# What TrainingArguments/GRPOConfig raise for a value they do not accept.
REFUSALS = (ValueError, TypeError, OSError, AttributeError, KeyError, NotImplementedError, ImportError, RuntimeError)


def model_init_kwargs(value: Any) -> dict[str, Any]:
    """``grpo.model_init_kwargs`` as a mapping: a recipe mapping, or JSON text as transformers reads it."""
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise UserError(f"grpo.model_init_kwargs is not a JSON object ({error.msg}): write a mapping, "
                            "e.g. --model_init_kwargs '{\"attn_implementation\": \"sdpa\"}'") from None
    if not isinstance(value, Mapping):
        raise UserError(f"grpo.model_init_kwargs must be a mapping of from_pretrained arguments, got {value!r}")
    return dict(value)


def _culprit(config_class: type, kwargs: Mapping[str, Any], stated: Iterable[str]) -> str | None:
    """The one stated key without which the config builds, if there is one."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the trial builds repeat the warnings of the real one
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for key in (key for key in stated if key in kwargs):
                try:
                    config_class(**{k: v for k, v in kwargs.items() if k != key})
                except REFUSALS:
                    continue
                return key
    finally:
        hf_logging.set_verbosity(verbosity)
    return None


def make_grpo_config(kwargs: Mapping[str, Any], stated: Iterable[str]) -> Any:
    """``GRPOConfig(**kwargs)``; a refusal is a UserError naming the key of ``stated`` (the recipe's) it was about."""
    from trl import GRPOConfig

    try:
        return GRPOConfig(**kwargs)
    except REFUSALS as error:
        first = (str(error).strip().splitlines() or [""])[0]
        reason = f"{type(error).__name__}: {first}" if first else type(error).__name__
        key = _culprit(GRPOConfig, kwargs, list(stated))
        if key is None:
            raise UserError(f"TRL refused the grpo settings ({reason}): fix the grpo key it names") from None
        raise UserError(f"TRL refused grpo.{key} = {kwargs[key]!r} ({reason}): fix it in the recipe or with "
                        f"--{key}") from None


# GRPOConfig keys whose check depends on the machine the job runs on (its GPUs, its process group): a login node
# without GPUs would refuse bf16 that the job's GPUs accept, so a dry run leaves them to the job.
MACHINE_KEYS = ("bf16", "fp16", "tf32", "bf16_full_eval", "fp16_full_eval", "use_cpu", "ddp_backend", "torch_compile",
                "torch_compile_backend", "torch_compile_mode")


def check_portable_grpo_config(grpo: Mapping[str, Any], reward_weights: list[float]) -> list[str]:
    """Build a GRPOConfig from the ``grpo`` section on this machine, without the keys of ``MACHINE_KEYS``, so a
    value TRL refuses anywhere (an unknown optimizer, a scheduler name, a missing config file) fails a dry run;
    returns the machine keys the recipe states, which only the job's machine can check."""
    kwargs = {key: value for key, value in grpo.items() if key not in MACHINE_KEYS}
    kwargs.update(reward_weights=reward_weights, use_cpu=True, push_to_hub=False,
                  model_init_kwargs=model_init_kwargs(grpo.get("model_init_kwargs")))
    make_grpo_config(kwargs, stated=[key for key in grpo if key not in MACHINE_KEYS])
    return [key for key in grpo if key in MACHINE_KEYS]
