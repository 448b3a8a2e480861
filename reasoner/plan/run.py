"""A run's whole plan, as ``reasoner plan`` prints it and the launchers check it: layout, memory, checkpoints.

The layout comes from reasoner.topology with the real environment (SLURM's nodes, the ``REASONER_*`` overrides),
and the memory estimate and the checkpoint plan are made for exactly that layout, with the GPU size of the
machine when the plan is made for the machine it runs on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from reasoner.plan.budget import MemoryPlan
from reasoner.errors import UserError
from reasoner.plan.candidates import (Candidate, choose, closest, enumerate_candidates, first_refusal, time_step,
                                       why, with_overrides)
from reasoner.plan.checkpoints import CheckpointPlan, format_checkpoints, plan_checkpoints
from reasoner.plan.estimate import estimate_for_layout
from reasoner.plan.hardware import Machine
from reasoner.plan.report import report_of
from reasoner.plan.search import refusal_of
from reasoner.plan.settings import precision, zero_stage_of
from reasoner.plan.shapes import model_shape
from reasoner.plan.throughput import Hardware
from reasoner.topology import Plan, format_plan, gpus_from_env, plan_for_recipe
from reasoner.topology.environment import env_int, read_nodes


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """Layout, memory estimate and checkpoint plan of one recipe on one allocation."""

    recipe: Any
    layout: Plan
    gpu_memory_gb: float
    gpu_memory_source: str
    memory: MemoryPlan | None = None
    checkpoints: CheckpointPlan | None = None
    candidates: tuple[Candidate, ...] = ()
    chosen: Candidate | None = None
    why: str = ""


def gpu_memory(recipe: Any, *, given: float | None, machine: Machine | None) -> tuple[float, str]:
    """GPU size to plan for, and where it came from: given, this machine's GPUs (when the plan is for this
    machine), else the recipe's ``resources.gpu_memory_gb``."""
    if given is not None:
        return given, "given"
    if machine is not None and machine.gpu_memory_gb:
        return machine.gpu_memory_gb, "this machine's GPUs"
    return float(recipe.resources.gpu_memory_gb), "the recipe's resources.gpu_memory_gb"


def plan_run(recipe: Any, *, env: Mapping[str, str], nodes: int | None = None, gpus_per_node: int | None = None,
             gpu_memory_gb: float | None = None, machine: Machine | None = None, memory: bool = True) -> RunPlan:
    """Plan ``recipe`` in ``env``. Nodes: ``nodes``, else SLURM's, else the recipe's. GPUs per node:
    ``gpus_per_node``, else what SLURM or CUDA_VISIBLE_DEVICES say, else ``machine``'s, else the recipe's.
    ``machine`` is given when the plan is for the machine it runs on: its GPU size and host memory then count."""
    resources = recipe.resources
    if nodes is None and "SLURM_JOB_ID" not in env:
        nodes = resources.nodes
    if gpus_per_node is None:
        gpus_per_node = gpus_from_env(env)
    if gpus_per_node is None and machine is not None:
        gpus_per_node = machine.gpus
    if gpus_per_node is None and not env.get("REASONER_GPUS_PER_NODE"):
        gpus_per_node = resources.gpus_per_node
    size, source = gpu_memory(recipe, given=gpu_memory_gb, machine=machine)
    host = machine.host_memory_gb if machine is not None else None
    gpus = gpus_per_node if gpus_per_node is not None else (env_int(env, "REASONER_GPUS_PER_NODE") or 0)
    found: list[Candidate] = []
    if recipe.generation.uses_vllm and gpus > 0:
        shape = model_shape(recipe.model.id, recipe.model.revision)
        found = enumerate_candidates(recipe, env=env, nodes=nodes or len(read_nodes(env, nodes).names),
                                     gpus_per_node=gpus, gpu_memory_gb=size, shape=shape, host_memory_gb=host)
    chosen = choose(found)
    shown = chosen or closest(found)  # nothing fits: the launchable layout nearest to fitting, with its refusal
    if shown is not None:
        assert shown.layout is not None
        recipe, layout = with_overrides(recipe, shown.overrides), shown.layout
    elif found:  # every layout was refused before it could be sized: the first launchable one's reason
        raise UserError(first_refusal(found) or found[0].refused or "no layout can run this recipe")
    else:
        layout = plan_for_recipe(recipe, env=env, gpus_per_node=gpus_per_node, nodes=nodes, gpu_memory_gb=size)
    run = RunPlan(recipe=recipe, layout=layout, gpu_memory_gb=size, gpu_memory_source=source, candidates=tuple(found),
                  chosen=chosen, why=why(chosen, found) if chosen is not None else "")
    if not memory:
        return run
    stage = zero_stage_of(layout.accelerate_config)
    estimate = shown.memory if shown is not None else estimate_for_layout(
        recipe, layout, gpu_memory_gb=size, zero_stage=stage, host_memory_gb=host)
    assert estimate is not None
    prec = precision(recipe.model, recipe.grpo, estimate.model, zero_stage=stage, on_gpu=layout.gpus_per_node > 0)
    step = shown.step if shown is not None else (
        time_step(recipe, layout, estimate, Hardware.from_resources(recipe.resources)) if layout.gpus_per_node else None)
    return dataclasses.replace(run, memory=estimate, checkpoints=plan_checkpoints(
        recipe, layout, estimate.model, prec, zero_stage=stage, step_s=step.total_s if step is not None else None))


def describe(run: RunPlan) -> str:
    """The layout table, then the memory table and the checkpoint plan."""
    from reasoner.plan.summary import describe_choice

    text = describe_choice(run)
    text += ("\n" if text else "") + format_plan(run.layout, getattr(run.recipe, "name", None))
    if run.memory is not None:
        text += f"\ngpu memory: {run.gpu_memory_gb:g} GiB ({run.gpu_memory_source})\n"
        text += report_of(run.recipe, run.memory) + "\n"
    if run.checkpoints is not None:
        text += "\n" + format_checkpoints(run.checkpoints) + "\n"
    return text


def refusal(run: RunPlan) -> str | None:
    """Why this run cannot start (one line, with the fix), or None."""
    return None if run.memory is None else refusal_of(run.recipe, run.memory)
