"""Values a recipe or command line may hold that their types alone do not refuse.

A negative learning rate, ``max_steps -5`` (which TRL reads as "no step limit" and trains a whole epoch), a time
budget of -1 minutes, an output folder that cannot be written, a hub repo id like ``../../etc``: each is refused
here, before any model loads, in one line naming the key and the fix (exit code 2 through ``UserError``).
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

from reasoner.errors import UserError

__all__ = ["check_grpo_values", "check_output_dir", "check_push_repo_id", "check_time_budget"]


def _finite_at_least(low: float) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, (int, float)) and math.isfinite(value) and value >= low


def _finite_above(low: float) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, (int, float)) and math.isfinite(value) and value > low


def _steps(value: Any) -> bool:
    return isinstance(value, int) and (value > 0 or value == -1)


# grpo key -> (accepts the value, what it must be). Keys TRL accepts with any value of the right type but that
# make no sense for a run; None and absent keys are left to TRL's defaults.
GRPO_VALUE_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "learning_rate": (_finite_at_least(0), "a finite number >= 0, e.g. 5e-6"),
    "max_steps": (_steps, "a positive number of optimizer steps, or -1 to train num_train_epochs"),
    "num_train_epochs": (_finite_above(0), "a finite number of epochs above 0"),
    "per_device_train_batch_size": (_finite_above(0), "a positive number of completions per device"),
    "gradient_accumulation_steps": (_finite_above(0), "a positive number of steps"),
    "max_completion_length": (_finite_above(0), "a positive number of tokens"),
    "temperature": (_finite_above(0), "a finite number above 0"),
    "weight_decay": (_finite_at_least(0), "a finite number >= 0"),
    "max_grad_norm": (_finite_at_least(0), "a finite number >= 0"),
    "warmup_steps": (_finite_at_least(0), "a number of steps >= 0 (or a ratio below 1)"),
    "beta": (_finite_at_least(0), "a finite number >= 0 (0 turns the KL term off)"),
}


def check_grpo_values(grpo: Mapping[str, Any]) -> None:
    """Refuse grpo values of the right type that no run can mean (NaN, negative, ``max_steps -5``)."""
    for key, (accepts, expected) in GRPO_VALUE_RULES.items():
        value = grpo.get(key)
        if value is None or isinstance(value, bool):
            continue
        if not accepts(value):
            raise UserError(f"recipe key '{key}' must be {expected}, got {value!r}; fix it in the recipe or with --{key}")


def check_push_repo_id(repo_id: str | None) -> None:
    """The repo a run pushes to (``hub.repo_id`` with ``hub.push``) must be a hub repo id (``org/name``), not a
    path like ``../../etc``; None (nothing pushed) passes."""
    if not repo_id:
        return
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise UserError(f"hub.repo_id '{repo_id}' is not a hub repo id: write ORG/NAME with letters, digits, '-', '_' "
                        "or '.' (no '..', no leading '/'), e.g. --hub.repo_id my-org/my-model") from None
    if "/" not in repo_id:
        raise UserError(f"hub.repo_id '{repo_id}' has no organization: write ORG/NAME, e.g. --hub.repo_id my-org/{repo_id}")


def check_time_budget(minutes: float | None) -> None:
    """``--time-budget-minutes`` must be a positive, finite number of minutes (or absent)."""
    if minutes is not None and not (math.isfinite(minutes) and minutes > 0):
        raise UserError(f"--time-budget-minutes must be a positive number of minutes, got {minutes}; leave it out for no budget")


def check_output_dir(output_dir: str | Path) -> None:
    """The output folder must be a folder (or not exist yet), not under a file, and writable.

    Writability is probed by creating and removing a temporary file in the nearest folder that exists, so the
    check is true for root too (a read-only mount) and leaves nothing behind when it fails.
    """
    path = Path(output_dir).expanduser()
    if path.exists() and not path.is_dir():
        raise UserError(f"output_dir {path} is a file, not a folder: choose another --output_dir")
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing != path and existing.exists() and not existing.is_dir():
        raise UserError(f"output_dir {path} is under {existing}, which is a file: choose another --output_dir")
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=".reasoner-write-check-"):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise UserError(f"output_dir {path} cannot be written ({existing}: {reason}): choose a writable --output_dir "
                        "or fix the folder's permissions") from None
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"output_dir {path} cannot be written ({existing} is not writable): choose a writable --output_dir")


def check_eval_sampling(section: Any) -> None:
    """The recipe's ``eval`` sampling keys: samples at least 1, temperature above 0, top_p in (0, 1], length > 0."""
    samples, temperature, top_p = section.samples, section.temperature, section.top_p
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise UserError(f"eval.samples must be a whole number of completions per question, 1 or more, got {samples!r}")
    if temperature is not None and not (temperature > 0 and math.isfinite(temperature)):
        raise UserError(f"eval.temperature must be above 0 (sampling), got {temperature!r}: leave it null for the "
                        "training temperature")
    if top_p is not None and not 0 < top_p <= 1:
        raise UserError(f"eval.top_p must be above 0 and at most 1, got {top_p!r}")
    length = section.max_new_tokens
    if length is not None and length <= 0:
        raise UserError(f"eval.max_new_tokens must be a positive number of tokens, got {length!r}")
