"""Building TRL's ``GRPOConfig``: whatever TRL or transformers refuse there is one line naming the recipe key.

``GRPOConfig`` (through transformers' ``TrainingArguments``) checks many values only when it is built, and not
always with a ``ValueError``: a missing ``accelerator_config`` file is a ``FileNotFoundError``, a string where a
``parallelism_config`` belongs an ``AttributeError``. Each of them is a value the user can fix, so each becomes a
``UserError``; and since the message does not always say which key it was about, the key is found by building
the config again without each key the recipe states.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from reasoner.errors import UserError

__all__ = ["REFUSALS", "make_grpo_config", "model_init_kwargs"]

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
        for key in stated:
            if key not in kwargs:
                continue
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
