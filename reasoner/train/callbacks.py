"""Trainer callbacks: the run's own metrics log, rank-zero hub pushes, and the end-of-run work.

Each callback does its work on global rank zero only and returns at once on every other rank, so the
training loop carries no per-step cost beyond appending one JSON line per logged step.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from transformers import TrainerCallback

from reasoner.recipe.load import Recipe

log = logging.getLogger("reasoner.train")


class MetricsFileCallback(TrainerCallback):
    """Append every log dict to ``output_dir/metrics.jsonl`` so a running run can be plotted."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.started = time.time()

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: D102 - TrainerCallback API
        if not state.is_world_process_zero or not logs:
            return
        now = time.time()
        record = {"step": state.global_step, "time_s": round(now - self.started, 3), "wall": round(now, 3), **logs}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as fh:
            fh.write(json.dumps(record, default=float) + "\n")


# Short names for the one-line-per-step log; anything else TRL logs still reaches metrics.jsonl.
STEP_LINE_KEYS = (("reward", "reward"), ("rewards/correctness/mean", "correct"), ("rewards/integer/mean", "int"),
                  ("rewards/strict_format/mean", "strict"), ("rewards/soft_format/mean", "soft"),
                  ("rewards/xml_count/mean", "xml"), ("kl", "kl"), ("completions/mean_length", "len"),
                  ("learning_rate", "lr"), ("step_time", "s/step"))


def format_step_line(step: int, max_steps: int, logs: dict) -> str:
    parts = [f"step {step}/{max_steps}"]
    for key, short in STEP_LINE_KEYS:
        value = logs.get(key)
        if isinstance(value, (int, float)):
            parts.append(f"{short} {value:.3g}" if key != "learning_rate" else f"{short} {value:.1e}")
    return " | ".join(parts)


class StepLineCallback(TrainerCallback):
    """One readable line per logged step instead of a progress bar and a printed dict."""

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: D102 - TrainerCallback API
        if state.is_world_process_zero and logs and "reward" in logs:
            log.info(format_step_line(state.global_step, state.max_steps, logs))


class TimeBudgetCallback(TrainerCallback):
    """Stop after the step that exhausts a wall-clock budget; the run then saves and pushes as usual."""

    def __init__(self, budget_s: float) -> None:
        self.budget_s = budget_s
        self.started = time.monotonic()

    def on_train_begin(self, args, state, control, **kwargs):  # noqa: D102 - TrainerCallback API
        self.started = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):  # noqa: D102 - TrainerCallback API
        if time.monotonic() - self.started >= self.budget_s:
            control.should_training_stop = True
            if state.is_world_process_zero:
                log.info("time budget of %.1f min reached at step %d: finishing", self.budget_s / 60, state.global_step)
        return control


class CompleteCheckpointCallback(TrainerCallback):
    """After each save, on every rank: wait until every rank's part is on disk, record the checkpoint complete
    (global rank zero), and only then queue its background push. See reasoner.train.checkpoints."""

    def __init__(self, dist, pusher=None) -> None:
        self.dist = dist  # accelerate's PartialState
        self.pusher = pusher

    def on_save(self, args, state, control, **kwargs):  # noqa: D102 - TrainerCallback API
        from reasoner.train.checkpoints import record_when_all_saved

        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        recorded = record_when_all_saved(folder, state.global_step, self.dist, model_only=bool(args.save_only_model))
        if recorded and self.pusher is not None:
            from reasoner.publish.push import checkpoint_job

            self.pusher.submit(checkpoint_job(folder, state.global_step))


def build_callbacks(recipe: Recipe, output_dir: Path, state, *, sources, stats, time_budget_s: float | None = None):
    """The callbacks for one run, the RunFinisher that ends it (card, final push, report of failures),
    and the preemption watcher whose ``stopped`` flag tells a finished run from an interrupted one."""
    callbacks: list[TrainerCallback] = [MetricsFileCallback(output_dir / "metrics.jsonl"), StepLineCallback()]
    if time_budget_s:
        callbacks.append(TimeBudgetCallback(time_budget_s))
    from reasoner.train.tracking import CompletionSampleCallback, configure_tracking

    targets = configure_tracking(recipe.grpo.get("report_to"))
    if recipe.tracking.samples > 0:
        callbacks.append(CompletionSampleCallback(output_dir, recipe.tracking.samples_every, recipe.tracking.samples,
                                                  tensorboard="tensorboard" in targets))
    pusher = None
    if recipe.hub.push_repo and state.is_main_process:
        from reasoner.publish.push import HubPusher

        pusher = HubPusher(recipe.hub.push_repo, private=recipe.hub.private)
        if recipe.hub.push_checkpoints:
            pusher.start_uploader()  # ready by the first save, not started beside it
    from reasoner.train.pinned import PinsCallback

    callbacks.append(PinsCallback(sources))  # before the checkpoint is recorded complete and pushed
    callbacks.append(CompleteCheckpointCallback(state, pusher if recipe.hub.push_checkpoints else None))
    from reasoner.train.preemption import PreemptionCallback

    preemption = PreemptionCallback()
    callbacks.append(preemption)

    from reasoner.train.finish import RunFinisher

    finisher = RunFinisher(recipe, output_dir, is_main=state.is_main_process, pusher=pusher, sources=sources, stats=stats)
    return callbacks, finisher, preemption

