"""Checkpoints: how many a run saves, how long one save takes, and whether the preemption warning comes early enough.

A preempted or timed-out job keeps only what it saved. So a recipe must save often enough for its length, and
SLURM's warning signal (``--signal=B:USR1@LEAD``) must come early enough for the ranks to finish the step they are
in, write a checkpoint, wait for queued hub pushes and exit before the kill. For large models that is minutes: a
ZeRO-3 checkpoint of a 32B model is about 460 GB (16-bit weights gathered on rank zero, plus every rank's 16-bit
and fp32 optimizer shards).

The estimate is arithmetic on stated assumptions, printed beside it: the recipe's ``resources.checkpoint_write_gbps``
(what one node writes per second to the output folder), the step time of reasoner.plan.throughput (its own
``resources.*`` assumptions), and ``resources.signal_lead_s`` (the lead the recipe is sized for, which ``sbatch
--signal`` must give). It also states the run's wall time and the disk its checkpoints take.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reasoner.lora.config import enabled as lora_enabled
from reasoner.plan.lora import adapter_params
from reasoner.plan.settings import Precision
from reasoner.plan.shapes import ModelShape
from reasoner.publish.push import preempted_drain_s
from reasoner.topology import Plan

MIN_SAVES = 4  # fewer checkpoints than this over a run: a preemption can cost a quarter of it
EXIT_MARGIN_S = 20.0  # the job script's own work after the ranks exit: stop the server, requeue
DEFAULT_WRITE_GBPS = 1.0
DEFAULT_SIGNAL_LEAD_S = 120.0
# Rows of public data sets the packaged recipes use, so steps are counted without downloading them.
KNOWN_ROWS = {("openai/gsm8k", "main", "train"): 7473, ("openai/gsm8k", "main", "test"): 1319,
              ("DigitalLearningGmbH/MATH-lighteval", "default", "train"): 7500,  # MATH: 7,500 train, 5,000 test
              ("DigitalLearningGmbH/MATH-lighteval", "default", "test"): 5000}


@dataclasses.dataclass(frozen=True)
class CheckpointPlan:
    """Save cadence, save time and the signal lead of one recipe on one layout."""

    rows: int | None
    steps: int | None
    steps_note: str
    save_every: int | None
    saves: int | None
    save_bytes: int  # what the busiest node writes per checkpoint
    save_s: float
    step_s: float | None  # None on CPU: not estimated
    push_wait_s: float
    lead_s: float
    write_gbps: float
    warnings: tuple[str, ...] = ()
    disk_bytes: int = 0  # every checkpoint the run keeps at once, on all nodes together, plus the final model

    @property
    def wall_s(self) -> float | None:
        """The run's estimated wall time: its steps plus its saves (None when either is unknown)."""
        if self.step_s is None or self.steps is None:
            return None
        return self.steps * self.step_s + (self.saves or 0) * self.save_s

    @property
    def lead_needed_s(self) -> float:
        """Seconds from the signal to the exit: finish the step, save, wait for pushes, leave the job script."""
        return (self.step_s or 0.0) + self.save_s + self.push_wait_s + EXIT_MARGIN_S

    @property
    def lead_covers(self) -> bool:
        return self.lead_s >= self.lead_needed_s


def dataset_rows(dataset: Any) -> int | None:
    """Training rows the recipe's data set (a DatasetSection) holds: generated, a local JSONL, a known public set;
    None if unknown."""
    limit = dataset.limit
    rows: int | None = None
    if dataset.id == "generated":
        rows = int(dataset.num_generated or 0)
    elif Path(str(dataset.id)).is_file() and str(dataset.id).endswith(".jsonl"):
        with open(dataset.id, encoding="utf-8") as handle:
            rows = sum(1 for line in handle if line.strip())
    else:
        rows = KNOWN_ROWS.get((dataset.id, dataset.config, dataset.split))
    if limit:
        return min(limit, rows) if rows is not None else int(limit)
    return rows


def optimizer_steps(grpo: Mapping[str, Any], rows: int | None, processes: int) -> tuple[int | None, str]:
    """Optimizer steps of the run, and how they were counted.

    One step consumes ``per_device_train_batch_size`` x processes x ``gradient_accumulation_steps`` completions,
    i.e. that many over ``num_generations`` prompts (reused ``num_iterations`` times); TRL's sampler drops a last
    incomplete batch.
    """
    if int(grpo.get("max_steps", -1) or -1) > 0:
        return int(grpo["max_steps"]), f"max_steps {grpo['max_steps']}"
    if rows is None:
        return None, "unknown: the data set's size is not known here (set max_steps to count it)"
    completions = (int(grpo.get("per_device_train_batch_size", 8)) * processes
                   * int(grpo.get("gradient_accumulation_steps", 1)))
    prompts = completions / (int(grpo.get("num_generations", 8)) * int(grpo.get("num_iterations", 1) or 1))
    epochs = float(grpo.get("num_train_epochs", 3.0))
    per_epoch = int(rows // prompts)
    return int(per_epoch * epochs), f"{rows} rows / {prompts:g} prompts per step = {per_epoch} per epoch x {epochs:g}"


def save_interval(grpo: Mapping[str, Any], steps: int | None) -> int | None:
    """Steps between checkpoints (a ``save_steps`` below 1 is a fraction of the run); None when nothing is saved."""
    strategy = str(grpo.get("save_strategy", "steps"))
    if strategy == "no":
        return None
    if strategy == "epoch":
        epochs = max(1, math.ceil(float(grpo.get("num_train_epochs", 3.0))))
        return None if steps is None else max(1, steps // epochs)
    every = float(grpo.get("save_steps", 500))
    if every < 1:
        return None if steps is None else max(1, math.ceil(every * steps))
    return int(every)


def checkpoint_bytes(shape: ModelShape, precision: Precision, *, zero_stage: int, layout: Plan) -> int:
    """Bytes the busiest node (rank zero's) writes for one checkpoint.

    Rank zero writes the model (16-bit, gathered under ZeRO-3); without DeepSpeed it also writes the optimizer.
    Under ZeRO-2/3 each rank writes its optimizer partition (fp32 master weights and two AdamW moments: 12 bytes
    per parameter in all), ZeRO-2 adds rank zero's whole 16-bit module state and ZeRO-3 each rank's 16-bit shard.
    """
    p = shape.params
    if zero_stage == 0:
        return 3 * precision.param_bytes * p
    weights = 2 if precision.mixed else precision.param_bytes
    shards_per_rank = (12 + (weights if zero_stage == 3 else 0)) * p / layout.num_processes
    rank_zero_extra = weights * p * (2 if zero_stage == 2 else 1)
    return int(rank_zero_extra + layout.processes_per_node * shards_per_rank)


def checkpoint_disk_bytes(shape: ModelShape, precision: Precision, *, zero_stage: int, kept: int) -> int:
    """Disk all nodes together use for ``kept`` checkpoints and the final 16-bit model."""
    p = shape.params
    weights = 2 if precision.mixed else precision.param_bytes
    if zero_stage == 0:
        one = 3 * precision.param_bytes * p
    else:  # the gathered 16-bit model, every rank's optimizer partition, ZeRO-2's module state, ZeRO-3's shards
        one = weights * p + 12 * p + weights * p
    return kept * one + weights * p


def plan_checkpoints(recipe: Any, layout: Plan, shape: ModelShape, precision: Precision, *, zero_stage: int,
                     step_s: float | None = None) -> CheckpointPlan:
    """The recipe's checkpoints on ``layout``: how many, how long each takes, whether the lead covers one, and
    the disk they take. ``step_s`` is the throughput model's step time (None: not estimated, e.g. on CPU)."""
    resources, grpo, hub = recipe.resources, recipe.grpo, recipe.hub
    write_gbps = float(resources.checkpoint_write_gbps or DEFAULT_WRITE_GBPS)
    rows = dataset_rows(recipe.dataset)
    steps, steps_note = optimizer_steps(grpo, rows, layout.num_processes)
    every = save_interval(grpo, steps)
    saves = None if steps is None else (0 if every is None else steps // every)
    size = checkpoint_bytes(shape, precision, zero_stage=zero_stage, layout=layout)
    if lora_enabled(getattr(recipe, "peft", None)):  # the adapter, its float32 optimizer states and master copy
        size = 16 * adapter_params(shape, recipe.peft)
    pushes = bool(hub.push_repo and hub.push_checkpoints)
    result = CheckpointPlan(
        rows=rows, steps=steps, steps_note=steps_note, save_every=every, saves=saves, save_bytes=size,
        save_s=size / (write_gbps * 1e9), step_s=step_s if layout.gpus_per_node else None,
        push_wait_s=preempted_drain_s() if pushes else 0.0,
        lead_s=float(resources.signal_lead_s or DEFAULT_SIGNAL_LEAD_S), write_gbps=write_gbps,
        disk_bytes=checkpoint_disk_bytes(shape, precision, zero_stage=zero_stage, kept=_kept(grpo, saves)))
    return dataclasses.replace(result, warnings=_warnings(result))


def _kept(grpo: Any, saves: int | None) -> int:
    """Checkpoints on disk at once: ``save_total_limit`` when set, else every save."""
    limit = grpo.get("save_total_limit")
    return min(int(limit), saves or 0) if limit else (saves or 0)


def _warnings(cp: CheckpointPlan) -> tuple[str, ...]:
    warnings = []
    if cp.steps is None:
        warnings.append(f"cannot count the checkpoints: steps {cp.steps_note}")
    elif cp.saves is not None and cp.saves < MIN_SAVES <= cp.steps:  # a run shorter than that is a test run
        fix = max(1, cp.steps // MIN_SAVES)
        warnings.append(f"saves {cp.saves} checkpoint(s) in {cp.steps} steps, fewer than {MIN_SAVES}: a preemption "
                        f"can lose much of the run; set save_steps to {fix} or less")
    if not cp.lead_covers:
        needed = math.ceil(cp.lead_needed_s / 60) * 60
        warnings.append(f"the preemption signal comes {cp.lead_s:g} s before the kill but finishing a step, saving "
                        f"and exiting take about {cp.lead_needed_s:.0f} s: set resources.signal_lead_s to {needed} "
                        f"and submit with sbatch --signal=B:USR1@{needed}")
    return tuple(warnings)


def format_checkpoints(cp: CheckpointPlan) -> str:
    """The checkpoint plan as the lines ``reasoner plan`` prints under the memory table."""
    saves = "unknown" if cp.saves is None else f"{cp.saves}" + (f" (every {cp.save_every} steps)" if cp.save_every else "")
    step = "not estimated on CPU" if cp.step_s is None else f"~{cp.step_s:.0f} s (the throughput model's estimate)"
    wall = "not estimated" if cp.wall_s is None else f"~{cp.wall_s / 3600:.1f} h ({cp.steps} steps + {cp.saves or 0} saves)"
    lines = [
        f"checkpoints: {saves} in {cp.steps if cp.steps is not None else '?'} optimizer steps ({cp.steps_note})",
        f"  one save: {cp.save_bytes / 1e9:,.1f} GB on the busiest node, ~{cp.save_s:.0f} s at {cp.write_gbps:g} GB/s "
        "(resources.checkpoint_write_gbps)",
        f"  one step: {step}",
        f"  wall time: {wall}",
        f"  disk: {cp.disk_bytes / 1e9:,.1f} GB for the checkpoints kept at once and the final model, all nodes",
        f"  signal lead: {cp.lead_s:g} s (resources.signal_lead_s) for ~{cp.lead_needed_s:.0f} s = step + save"
        + (f" + up to {cp.push_wait_s:g} s of queued pushes" if cp.push_wait_s else "")
        + f" + {EXIT_MARGIN_S:g} s to exit: " + ("covered" if cp.lead_covers else "TOO SHORT"),
    ]
    lines += [f"warning: {warning}" for warning in cp.warnings]
    return "\n".join(lines)
