"""What a memory estimate is made of: items, per-device budgets with a capacity, and the plan's verdict."""

from __future__ import annotations

import dataclasses

from reasoner.plan.formulas import gib
from reasoner.plan.shapes import ModelShape


@dataclasses.dataclass(frozen=True)
class Item:
    """One line of a budget: what it is, its size, and how it was counted."""

    name: str
    bytes: int
    note: str = ""


@dataclasses.dataclass(frozen=True)
class Budget:
    """What one device holds against its capacity (None: no verdict, e.g. CPU host memory)."""

    role: str
    items: tuple[Item, ...]
    capacity: int | None
    notes: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return sum(item.bytes for item in self.items)

    @property
    def headroom(self) -> int | None:
        return None if self.capacity is None else self.capacity - self.total

    @property
    def fits(self) -> bool:
        return self.capacity is None or self.total <= self.capacity


@dataclasses.dataclass(frozen=True)
class MemoryPlan:
    """The per-device memory of one recipe on one layout, and the verdict."""

    recipe: str
    model: ModelShape
    nodes: int
    gpus_per_node: int
    gpu_memory_gb: float
    zero_stage: int
    placement: str
    backend: str
    tensor_parallel_size: int
    training_ranks: int
    activation_checkpointing: bool
    activations_other_mode: int  # activations with checkpointing flipped, for comparison
    training: Budget
    generation: Budget | None
    notes: tuple[str, ...] = ()
    generation_queued: bool = False  # vLLM's KV cache holds only part of the generation batch at once
    generation_at_once: int = 0  # sequences one vLLM engine's KV cache holds together
    host: Budget | None = None  # host memory of rank zero's node (loading, and the gather when saving)

    @property
    def budgets(self) -> tuple[Budget, ...]:
        return tuple(b for b in (self.training, self.generation, self.host) if b is not None)

    @property
    def fits(self) -> bool:
        return all(budget.fits for budget in self.budgets)

    @property
    def on_gpu(self) -> bool:
        return self.gpus_per_node > 0

    def verdict(self) -> str:
        """One line: fits or not, with the headroom (or the shortfall) of each device kind."""
        parts = []
        for budget in self.budgets:
            if budget.capacity is None:
                parts.append(f"{budget.role} {gib(budget.total)} GiB (no limit given)")
            else:
                word = "headroom" if budget.fits else "SHORT BY"
                parts.append(f"{budget.role} {gib(budget.total)} of {gib(budget.capacity)} GiB, "
                             f"{word} {gib(abs(budget.headroom or 0))} GiB")
        return ("fits: " if self.fits else "does not fit: ") + "; ".join(parts)
