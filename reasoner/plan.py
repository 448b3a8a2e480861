"""``reasoner plan``: where generation and training run, and whether the memory fits, before anything queues.

The layout comes from ``reasoner.topology`` (a pure function of the environment: SLURM variables, visible GPUs,
or the ``--nodes``/``--gpus-per-node`` given here, falling back to the recipe's ``resources``); the per-GPU memory
estimate from ``reasoner.memory``. ``--format env`` prints shell-quoted ``KEY=value`` lines for the launchers.
"""

from __future__ import annotations

import argparse
import os
from typing import Sequence

from reasoner.errors import UserError
from reasoner.recipe import load_recipe


def parse_gpu_memory(text: str) -> float:
    value = text.strip().upper().removesuffix("B").removesuffix("I").removesuffix("G")
    try:
        return float(value)
    except ValueError:
        raise UserError(f"--gpu-memory '{text}' is not a size: write it in GB, e.g. 80GB or 141") from None


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="reasoner plan", description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--nodes", type=int, default=None, help="default: SLURM's allocation, else the recipe's resources")
    parser.add_argument("--gpus-per-node", type=int, default=None,
                        help="default: the GPUs SLURM or CUDA_VISIBLE_DEVICES show, else the recipe's resources")
    parser.add_argument("--gpu-memory", default=None, help="memory per GPU, e.g. 80GB (default: the recipe's resources)")
    parser.add_argument("--format", choices=("table", "env"), default="table")
    parser.add_argument("--no-memory", action="store_true", help="print the layout only")
    ns, overrides = parser.parse_known_args(list(argv))
    recipe = load_recipe(ns.recipe, overrides)

    from reasoner import topology

    env = dict(os.environ)
    in_slurm = "SLURM_JOB_ID" in env
    nodes = ns.nodes if ns.nodes is not None else (None if in_slurm else recipe.resources.get("nodes"))
    gpus = ns.gpus_per_node
    if gpus is None:
        gpus = topology.gpus_from_env(env)
    if gpus is None:
        gpus = recipe.resources.get("gpus_per_node")
    layout = topology.plan_for_recipe(recipe, env=env, gpus_per_node=gpus, nodes=nodes)
    if ns.format == "env":
        print(topology.format_env(layout))
        return 0
    print(topology.format_plan(layout))
    if not ns.no_memory:
        from reasoner import memory

        gpu_memory = parse_gpu_memory(ns.gpu_memory) if ns.gpu_memory else float(recipe.resources.get("gpu_memory_gb", 80))
        print()
        print(memory.memory_report(recipe, layout.nodes, layout.gpus_per_node, gpu_memory))
        refusal = memory.refusal(recipe, layout.nodes, layout.gpus_per_node, gpu_memory)
        if refusal:
            raise UserError(refusal)
    return 0
