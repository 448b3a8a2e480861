"""The memory estimate as the table ``reasoner plan`` prints: one block per device kind, then the verdict."""

from __future__ import annotations

from typing import Any

from reasoner.errors import UserError
from reasoner.plan.budget import Budget, MemoryPlan
from reasoner.plan.estimate import estimate
from reasoner.plan.formulas import GIB
from reasoner.plan.search import suggestion
from reasoner.topology.placement import DEFAULT_GPU_MEMORY_GB

_WIDTH = 44


def format_memory_plan(plan: MemoryPlan) -> str:
    """The plan as a table: one block per device kind, one line per item, then the verdict.

    Sizes are GiB, or MiB for plans under 1 GiB (the tiny CPU model), so no line reads 0.00.
    """
    unit, scale = ("GiB", GIB) if plan.training.total >= GIB else ("MiB", 1 << 20)
    gen = f"{plan.backend}, placement {plan.placement}" + (
        f", tp {plan.tensor_parallel_size}" if plan.backend == "vllm" else "")
    device = f"{plan.gpus_per_node} GPU(s) of {plan.gpu_memory_gb:g} GiB" if plan.on_gpu else "CPU"
    lines = [f"memory plan: {plan.recipe} on {plan.nodes} node(s) x {device}; {plan.training_ranks} training rank(s), "
             f"ZeRO-{plan.zero_stage}; generation {gen}"]
    for budget in plan.budgets:
        per = "per GPU" if plan.on_gpu and budget is not plan.host else "RAM"
        lines += ["", *_budget_lines(budget, per, unit, scale)]
    lines.append("")
    lines += [f"note: {note}" for note in plan.notes]
    lines.append(f"verdict: {plan.verdict()}")
    return "\n".join(lines)


def _budget_lines(budget: Budget, per: str, unit: str, scale: int) -> list[str]:
    def size(value: int | float) -> str:
        return f"{value / scale:.2f}"

    lines = [f"{budget.role + ' (' + per + ')':<{_WIDTH}} {unit:>8}   how"]
    lines += [f"  {item.name:<{_WIDTH - 2}} {size(item.bytes):>8}   {item.note}" for item in budget.items]
    lines.append(f"  {'total':<{_WIDTH - 2}} {size(budget.total):>8}")
    if budget.capacity is not None:
        word = "headroom" if budget.fits else "short by"
        lines.append(f"  {'capacity':<{_WIDTH - 2}} {size(budget.capacity):>8}   {word} "
                     f"{size(abs(budget.headroom or 0))} {unit}")
    return lines + [f"  note: {note}" for note in budget.notes]


def memory_report(recipe: Any, nodes: int, gpus_per_node: int, gpu_memory_gb: float = DEFAULT_GPU_MEMORY_GB) -> str:
    """The memory table for a hypothetical layout (the planner's choice when the recipe leaves it the placement),
    the verdict, and a fix when it does not fit."""
    from reasoner.plan.candidates import chosen_memory

    try:
        plan = chosen_memory(recipe, nodes=nodes, gpus_per_node=gpus_per_node, gpu_memory_gb=gpu_memory_gb) or \
            estimate(recipe, nodes=nodes, gpus_per_node=gpus_per_node, gpu_memory_gb=gpu_memory_gb)
    except UserError as exc:
        return f"memory: not estimated: {exc}"
    return report_of(recipe, plan)


def report_of(recipe: Any, plan: MemoryPlan) -> str:
    """The memory table of an estimated plan, with the smallest layout that fits when it does not."""
    text = format_memory_plan(plan)
    if not plan.fits and plan.on_gpu:
        text += "\n" + suggestion(recipe, plan.gpu_memory_gb)
    return text
