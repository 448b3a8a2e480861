"""The smallest layout a recipe fits, and the one-line refusal (with that layout as the fix) when it does not."""

from __future__ import annotations

from typing import Any

from reasoner.errors import UserError
from reasoner.plan.budget import MemoryPlan
from reasoner.plan.estimate import estimate
from reasoner.plan.formulas import ZERO_STAGES
from reasoner.plan.shapes import model_shape
from reasoner.topology.placement import DEFAULT_GPU_MEMORY_GB

GPU_COUNTS = (1, 2, 4, 8)


def smallest_plan(recipe: Any, gpu_memory_gb: float = DEFAULT_GPU_MEMORY_GB, max_nodes: int = 64, *,
                  node_gpus: int = 8) -> MemoryPlan:
    """The plan of the layout with the fewest GPUs that fits (see :func:`smallest_layout`)."""
    shape = model_shape(recipe.model.id, recipe.model.revision)
    single = [g for g in GPU_COUNTS if g < node_gpus] + [node_gpus]
    candidates = sorted({(g, 1, g) for g in single} | {(n * node_gpus, n, node_gpus) for n in range(2, max_nodes + 1)})
    vllm = recipe.generation.uses_vllm
    own = recipe.generation.placement or "auto"
    placements = [own] if own == "auto" or not vllm else [own, "auto"]
    for _total, nodes, gpus in candidates:
        for where in placements:
            for stage in ZERO_STAGES:
                fitting: list[MemoryPlan] = []
                for tp in ([t for t in GPU_COUNTS if t <= gpus] if vllm else [None]):
                    try:
                        plan = estimate(recipe, nodes=nodes, gpus_per_node=gpus, gpu_memory_gb=gpu_memory_gb,
                                        zero_stage=stage, tensor_parallel_size=tp, shape=shape, placement=where)
                    except UserError:
                        continue
                    if plan.fits:
                        fitting.append(plan)
                if fitting:
                    # Same GPUs either way: prefer a tensor-parallel size whose KV cache holds the whole batch.
                    whole = [p for p in fitting if not p.generation_queued]
                    return (whole or fitting)[0]
    raise UserError(f"recipe {getattr(recipe, 'name', '?')} fits no layout of up to {max_nodes} nodes of "
                    f"{node_gpus} GPUs with {gpu_memory_gb:g} GiB each; use a smaller model or shorter sequences")


def smallest_layout(recipe: Any, gpu_memory_gb: float = DEFAULT_GPU_MEMORY_GB, max_nodes: int = 64, *,
                    node_gpus: int = 8) -> tuple[int, int, int, int]:
    """The layout with the fewest GPUs that fits: ``(nodes, gpus_per_node, zero_stage, tensor_parallel_size)``.

    One node is tried with 1, 2, 4 ... ``node_gpus`` GPUs, several nodes with ``node_gpus`` each (clusters
    are built of whole nodes). For each layout the recipe's own generation placement is tried first, then
    the topology's choice for that layout (``auto``). Ties go to fewer nodes, then the lower ZeRO stage (less
    communication), then the smaller tensor-parallel size among those whose KV cache holds the whole batch.
    Layouts reasoner.topology refuses are skipped. Raises UserError when nothing up to ``max_nodes`` fits.
    """
    plan = smallest_plan(recipe, gpu_memory_gb, max_nodes, node_gpus=node_gpus)
    return plan.nodes, plan.gpus_per_node, plan.zero_stage, plan.tensor_parallel_size


def refusal(recipe: Any, nodes: int, gpus_per_node: int, gpu_memory_gb: float = DEFAULT_GPU_MEMORY_GB,
            zero_stage: int | None = None) -> str | None:
    """One line saying why ``nodes`` x ``gpus_per_node`` cannot run the recipe and what would, or None when it fits.

    A recipe that leaves its layout to the planner is judged on the layout ``reasoner plan`` chooses."""
    from reasoner.plan.candidates import chosen_memory

    try:
        plan = chosen_memory(recipe, nodes=nodes, gpus_per_node=gpus_per_node, gpu_memory_gb=gpu_memory_gb) \
            if zero_stage is None else None
        plan = plan or estimate(recipe, nodes=nodes, gpus_per_node=gpus_per_node, gpu_memory_gb=gpu_memory_gb,
                                zero_stage=zero_stage)
    except UserError as exc:
        return str(exc)
    return refusal_of(recipe, plan)


def refusal_of(recipe: Any, plan: MemoryPlan) -> str | None:
    """One line saying why an estimated plan does not fit and what would, or None when it fits."""
    if plan.fits:
        return None
    hint = suggestion(recipe, plan.gpu_memory_gb) if not plan.training.fits or (
        plan.generation is not None and not plan.generation.fits) else "give the nodes more host memory (sbatch --mem)"
    return f"{plan.recipe} does not fit {plan.nodes} node(s) x {plan.gpus_per_node} GPU(s) of {plan.gpu_memory_gb:g} GiB " \
           f"with ZeRO-{plan.zero_stage}: {plan.verdict().split(': ', 1)[1]}; {hint}"


def suggestion(recipe: Any, gpu_memory_gb: float) -> str:
    try:
        plan = smallest_plan(recipe, gpu_memory_gb)
    except UserError as exc:
        return str(exc)
    config = {0: "single_gpu.yaml or ddp.yaml", 2: "zero2.yaml", 3: "zero3.yaml"}[plan.zero_stage]
    flags = f"--accelerate_config accelerate_configs/{config}"
    if plan.backend == "vllm":
        flags += f" --generation.placement {plan.placement} --generation.tensor_parallel_size {plan.tensor_parallel_size}"
    return (f"smallest layout that fits: {plan.nodes} node(s) x {plan.gpus_per_node} GPU(s), ZeRO-{plan.zero_stage} "
            f"({flags})")
