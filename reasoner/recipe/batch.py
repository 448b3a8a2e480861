"""The one rule for GRPO's batch shape: every generation batch holds whole groups of completions.

GRPO scores each completion against the other ``num_generations`` completions of its prompt, so the batch that
one generation round produces (``per_device_train_batch_size`` x training processes x
``steps_per_generation``, or ``generation_batch_size`` when a recipe sets it) must split into whole groups.
TRL's ``GRPOConfig`` checks the same when a config is made, with the world size it sees then; this module
checks it earlier, before anything launches, for the number of training processes a layout gives, and names
the fix. The recipe loader (with the launcher's ``WORLD_SIZE``) and the topology (with the planned processes)
both call :func:`check_generation_batch`; nothing else restates the rule.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from math import gcd
from typing import Any

from reasoner.errors import UserError

# TRL's GRPOConfig defaults, for recipes that leave a key out.
TRL_DEFAULTS = {"per_device_train_batch_size": 8, "gradient_accumulation_steps": 1, "num_generations": 8}


def whole_number(name: str, value: Any, minimum: int = 0) -> int:
    """``value`` as an int of at least ``minimum``; a bool, a fraction or text that is not digits is refused."""
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit())):
        raise UserError(f"{name}={value!r} is not a whole number; set it to one.")
    number = int(value)
    if number < minimum:
        raise UserError(f"{name}={number} must be at least {minimum}.")
    return number


@dataclasses.dataclass(frozen=True)
class BatchShape:
    """The recipe's batch keys, checked: completions per device, micro-steps per generation, group size."""

    per_device: int
    steps_per_generation: int
    num_generations: int
    generation_batch_size: int | None = None

    @classmethod
    def from_grpo(cls, grpo: Mapping[str, Any]) -> "BatchShape":
        """Read a ``grpo`` section (TRL ``GRPOConfig`` keys); TRL's defaults fill what it leaves out."""
        steps_given = grpo.get("steps_per_generation")
        size_given = grpo.get("generation_batch_size")
        if steps_given is not None and size_given is not None:
            raise UserError("set either generation_batch_size or steps_per_generation, not both.")
        num_generations = whole_number("num_generations", grpo.get("num_generations", TRL_DEFAULTS["num_generations"]), 1)
        if num_generations < 2:
            raise UserError(f"num_generations is {num_generations}: GRPO compares completions within a group, "
                            "use 2 or more")
        steps = steps_given if steps_given is not None else grpo.get(
            "gradient_accumulation_steps", TRL_DEFAULTS["gradient_accumulation_steps"])
        return cls(
            per_device=whole_number("per_device_train_batch_size",
                                    grpo.get("per_device_train_batch_size", TRL_DEFAULTS["per_device_train_batch_size"]), 1),
            steps_per_generation=whole_number("steps_per_generation", steps, 1),
            num_generations=num_generations,
            generation_batch_size=None if size_given is None else whole_number("generation_batch_size", size_given, 1),
        )

    def generation_batch(self, processes: int) -> int:
        """Completions one generation round produces across ``processes`` training processes."""
        if self.generation_batch_size is not None:
            return self.generation_batch_size
        return self.per_device * processes * self.steps_per_generation


def check_generation_batch(shape: BatchShape, processes: int) -> int:
    """The generation batch for ``processes`` training processes; UserError with the fix when it cannot work."""
    batch = shape.generation_batch(processes)
    global_batch = shape.per_device * processes
    groups = shape.num_generations
    if shape.generation_batch_size is not None:
        if batch % global_batch:
            raise UserError(
                f"generation_batch_size {batch} is not a multiple of the global batch {global_batch} "
                f"(per_device_train_batch_size {shape.per_device} x {_processes(processes)}); "
                f"set generation_batch_size to a multiple of {global_batch}."
            )
        if batch % groups:
            raise UserError(
                f"generation_batch_size {batch} is not divisible by num_generations {groups}; set "
                f"generation_batch_size to a multiple of {groups * global_batch // gcd(groups, global_batch)}."
            )
        return batch
    if batch % groups:
        fix = shape.per_device + 1
        while (fix * processes * shape.steps_per_generation) % groups:
            fix += 1
        raise UserError(
            f"the generation batch per_device_train_batch_size {shape.per_device} x {_processes(processes)} x "
            f"steps_per_generation {shape.steps_per_generation} = {batch} is not divisible by num_generations "
            f"{groups}; set per_device_train_batch_size to {fix} (or make per_device_train_batch_size a multiple "
            f"of {groups}), set num_generations to a divisor of {batch}, or change the number of training processes."
        )
    return batch


def _processes(count: int) -> str:
    return f"{count} training process" + ("" if count == 1 else "es")
