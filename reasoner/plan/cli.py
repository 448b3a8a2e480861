"""``reasoner plan``: where generation and training run, whether the memory fits, and how the run checkpoints.

The layout comes from reasoner.topology (SLURM's allocation, the visible GPUs, or the ``--nodes`` and
``--gpus-per-node`` given here, falling back to the recipe's ``resources``); the memory estimate and the checkpoint
plan are made for that layout. ``--format env`` prints shell-quoted ``KEY=value`` lines of the layout.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Sequence

from reasoner.errors import UserError
from reasoner.plan.hardware import parse_gb, this_machine
from reasoner.plan.run import describe, plan_run, refusal
from reasoner.plan.summary import plan_json
from reasoner.recipe.load import load_recipe
from reasoner.topology import format_env, gpus_from_env


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="reasoner plan", description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--nodes", type=int, default=None, help="default: SLURM's allocation, else the recipe's resources")
    parser.add_argument("--gpus-per-node", type=int, default=None,
                        help="default: the GPUs SLURM, CUDA_VISIBLE_DEVICES or nvidia-smi show, else the recipe's")
    parser.add_argument("--gpu-memory", default=None,
                        help="memory per GPU, e.g. 80GB (default: REASONER_GPU_MEMORY_GB, this machine's GPUs when "
                             "planning for them, else the recipe's resources)")
    parser.add_argument("--format", choices=("table", "env", "json"), default="table")
    parser.add_argument("--json", action="store_const", const="json", dest="format",
                        help="print the chosen plan as one JSON object (same as --format json)")
    parser.add_argument("--no-memory", action="store_true", help="print the layout only")
    ns, overrides = parser.parse_known_args(list(argv))
    recipe = load_recipe(ns.recipe, overrides, planned=True)
    env = dict(os.environ)
    given = parse_gb(ns.gpu_memory) if ns.gpu_memory else None
    found = this_machine(env)
    here = ns.gpus_per_node is None and ns.nodes is None and (gpus_from_env(env) is not None or bool(found.gpus))
    run = plan_run(recipe, env=env, nodes=ns.nodes, gpus_per_node=ns.gpus_per_node, gpu_memory_gb=given,
                   machine=found if here else None, memory=ns.format != "env" and not ns.no_memory)
    if ns.format == "env":
        print(format_env(run.layout))
        return 0
    if ns.format == "json":
        print(json.dumps(plan_json(run), indent=2))
        return 0
    print(describe(run))
    reason = refusal(run)
    if reason:
        raise UserError(reason)
    return 0
