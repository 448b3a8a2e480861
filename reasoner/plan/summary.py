"""The planner's choice as people and programs read it: the candidate table, and ``reasoner plan --json``."""

from __future__ import annotations

from typing import Any

from reasoner.plan.candidates import Candidate, gpu_split
from reasoner.plan.throughput import Hardware


def _verdict(c: Candidate) -> str:
    if c.refused is not None:
        return "refused: " + c.refused
    assert c.memory is not None
    worst = max(c.memory.budgets, key=lambda b: 0 if b.capacity is None else b.total / b.capacity)
    share = "" if worst.capacity is None else f" ({worst.role} {worst.total / worst.capacity:.0%})"
    return ("fits" if c.memory.fits else "out of memory") + share


def candidate_table(found: list[Candidate] | tuple[Candidate, ...], chosen: Candidate | None) -> str:
    """One row per candidate: GPUs training / generating / idle, memory verdict, step time, completions/s."""
    rows = [("", "candidate", "train", "gen", "idle", "step s", "gen/train/sync s", "compl/s", "memory")]
    for c in found:
        g = c.gpus or {}
        timed = c.step is not None and c.refused is None
        rows.append(("*" if c is chosen else "", c.name, *(str(g.get(k, "-")) for k in ("training", "generation", "idle")),
                     f"{c.step.total_s:.1f}" if timed and c.step else "-",
                     f"{c.step.generate_s:.1f}/{c.step.train_s:.1f}/{c.step.sync_s:.1f}" if timed and c.step else "-",
                     f"{c.rate:.1f}" if c.fits else "-", _verdict(c)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r[:-1], widths)) + "  " + r[-1] for r in rows)


def describe_choice(run: Any) -> str:
    """The candidate table, the winner and why, and the throughput model's assumptions."""
    if not run.candidates:
        return ""
    lines = [f"layouts considered for {run.recipe.name} ({len(run.candidates)}; * = chosen):",
             candidate_table(run.candidates, run.chosen)]
    if run.chosen is not None:
        lines.append(f"chosen: {run.chosen.name}: {run.why}")
    else:
        lines.append("chosen: none fits; the launchable layout nearest to fitting is shown below with its refusal")
    lines.append("throughput model (reasoner.plan.throughput), assumptions:")
    lines += ["  " + line for line in Hardware.from_resources(run.recipe.resources).lines()]
    return "\n".join(lines) + "\n"


def _candidate_json(c: Candidate) -> dict[str, Any]:
    return {"name": c.name, "placement": c.placement, "tensor_parallel_size": c.tensor_parallel_size,
            "gpus": c.gpus, "launchable": c.launchable, "fits": c.fits, "memory": _verdict(c),
            "estimated_step_s": round(c.step.total_s, 2) if c.step is not None and c.refused is None else None,
            "completions_per_s": round(c.rate, 2), "overrides": list(c.overrides)}


def plan_json(run: Any) -> dict[str, Any]:
    """The chosen plan as one JSON object (``reasoner plan --json``)."""
    layout, memory, cp = run.layout, run.memory, run.checkpoints
    gpus = gpu_split(layout)
    step = run.chosen.step if run.chosen is not None else None
    return {
        "recipe": run.recipe.name,
        "model": {"id": memory.model.name, "params": memory.model.params, "source": memory.model.source} if memory else None,
        "nodes": layout.nodes, "gpus_per_node": layout.gpus_per_node, "gpu_memory_gb": run.gpu_memory_gb,
        "gpus": gpus, "placement": layout.placement, "tensor_parallel_size": layout.tensor_parallel_size,
        "training_processes": {"nodes": layout.num_machines, "per_node": layout.processes_per_node,
                               "total": layout.num_processes,
                               "by_node": {n.node: n.processes for n in layout.node_ranks()}},
        "zero_stage": memory.zero_stage if memory else None,
        "fits": bool(memory.fits) if memory else None, "memory": memory.verdict() if memory else None,
        "estimated_step_s": round(cp.step_s, 2) if cp and cp.step_s is not None else None,
        "step": {"generate_s": round(step.generate_s, 2), "train_s": round(step.train_s, 2),
                 "sync_s": round(step.sync_s, 2), "completions": step.completions} if step else None,
        "steps": cp.steps if cp else None,
        "estimated_wall_s": round(cp.wall_s) if cp and cp.wall_s is not None else None,
        "checkpoint_disk_gb": round(cp.disk_bytes / 1e9, 1) if cp else None,
        "train_args": list(layout.train_args), "why": run.why,
        "assumptions": dict(Hardware.from_resources(run.recipe.resources).values),
        "candidates": [_candidate_json(c) for c in run.candidates],
    }
