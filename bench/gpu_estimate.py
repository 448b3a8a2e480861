"""What reasoner's planner predicts for one bench/gpu.py run: memory per GPU and step time, on the same layout.

The run is the packaged recipe with the benchmark's overrides on one GPU of ``gpu_memory_gb``; this asks
reasoner.topology for its layout (one process, generation in it by transformers), reasoner.plan.estimate for
the memory of that layout, and reasoner.plan.throughput (through the candidates' ``time_step``, as ``reasoner
plan`` times a layout) for the step: generation from decode memory bandwidth, training from FLOPs at the
assumed MFU. The assumptions are the recipe's ``resources.*`` values (defaults: an H100 SXM) and go into the JSON.
"""

from __future__ import annotations

import sys
from typing import Any

GIB = 2**30


def planned(recipe_name: str, overrides: list[str], gpu_memory_gb: float) -> dict[str, Any] | None:
    """The planner's numbers for the run, or None (with one line on stderr) when it refuses to estimate it."""
    from reasoner.errors import UserError
    from reasoner.plan.candidates import time_step
    from reasoner.plan.estimate import estimate_for_layout
    from reasoner.plan.throughput import Hardware
    from reasoner.recipe.load import load_recipe
    from reasoner.topology import plan_for_recipe

    try:
        recipe = load_recipe(recipe_name, overrides)
        layout = plan_for_recipe(recipe, env={}, gpus_per_node=1, nodes=1, gpu_memory_gb=gpu_memory_gb)
        memory = estimate_for_layout(recipe, layout, gpu_memory_gb=gpu_memory_gb)
        hardware = Hardware.from_resources(recipe.resources)
        step = time_step(recipe, layout, memory, hardware)
    except UserError as exc:  # the measurement stands without it
        print(f"bench/gpu.py: the planner gave no estimate: {exc}", file=sys.stderr)
        return None
    return {"gpu_memory_gb": gpu_memory_gb, "placement": layout.placement, "backend": layout.backend,
            "zero_stage": memory.zero_stage, "memory_gib": memory.training.total / GIB, "fits": memory.fits,
            "memory_items": {item.name: item.bytes / GIB for item in memory.training.items},
            "step_s": step.total_s, "generation_s": step.generate_s, "train_s": step.train_s, "sync_s": step.sync_s,
            "completions": step.completions, "assumptions": hardware.lines()}
