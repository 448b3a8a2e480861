"""Experiment tracking: wandb and tensorboard through TRL's ``report_to``, and samples of completions.

* wandb runs offline when no API key is configured (so a cluster without internet never blocks on a login),
  and follows ``WANDB_BASE_URL`` to a private wandb server like the wandb client always does;
* a tracker named in ``report_to`` but not installed is refused before training, with the install command;
* every ``tracking.samples_every`` steps a few completions with their per-reward scores go to
  ``output_dir/completions.jsonl`` and, with tensorboard, to a text panel, so one can read what the model writes.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import netrc
import os
from pathlib import Path
from typing import Any, MutableMapping

from transformers import TrainerCallback

from reasoner.errors import UserError

TRACKER_PACKAGES = {"wandb": ("wandb", "pip install 'reasoner[wandb]'"),
                    "tensorboard": ("tensorboard", "pip install 'reasoner[tensorboard]'")}


def report_targets(report_to: Any) -> list[str]:
    if report_to in (None, "none", "None"):
        return []
    if isinstance(report_to, str):
        return [report_to]
    return [str(t) for t in report_to]


def check_report_to(report_to: Any) -> None:
    """Refuse a ``report_to`` that transformers would refuse only when the trainer is built (after the data and
    the model): a name it has no integration for, or ``all``/``none`` beside other names."""
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    targets = report_targets(report_to)
    known = ", ".join(["none", "all", *INTEGRATION_TO_CALLBACK])
    for target in targets:
        if target in ("none", "all") and len(targets) > 1:
            raise UserError(f"report_to lists '{target}' beside other trackers ({', '.join(targets)}): "
                            f"write '{target}' alone, or only the trackers")
        if target not in INTEGRATION_TO_CALLBACK and target != "all":
            close = difflib.get_close_matches(target, list(INTEGRATION_TO_CALLBACK), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise UserError(f"report_to names '{target}', which transformers cannot report to: {hint}use {known} "
                            "(several as --report_to wandb,tensorboard)")


def _wandb_key_configured(env: MutableMapping[str, str]) -> bool:
    if env.get("WANDB_API_KEY"):
        return True
    host = env.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://", 1)[-1].split("/", 1)[0]
    try:
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def configure_tracking(report_to: Any, env: MutableMapping[str, str] | None = None) -> list[str]:
    """Check the trackers are installed and set wandb's mode; return the targets."""
    env = os.environ if env is None else env
    targets = report_targets(report_to)
    for target in targets:
        if target in TRACKER_PACKAGES:
            module, install = TRACKER_PACKAGES[target]
            if importlib.util.find_spec(module) is None:
                raise UserError(f"report_to names {target} but it is not installed: {install}, or drop it from report_to")
    if "wandb" in targets:
        env.setdefault("WANDB_PROJECT", "reasoner")
        if not _wandb_key_configured(env):
            env.setdefault("WANDB_MODE", "offline")
    return targets


class CompletionSampleCallback(TrainerCallback):
    """Every N logged steps, write a few completions with their rewards (main process only)."""

    def __init__(self, output_dir: Path, every: int, count: int, tensorboard: bool) -> None:
        self.path = output_dir / "completions.jsonl"
        self.every = max(1, every)
        self.count = count
        self.tensorboard = tensorboard
        self.trainer = None
        self._writer = None

    def attach(self, trainer) -> None:
        self.trainer = trainer

    def _sample(self) -> list[dict[str, Any]]:
        # TRL keeps the latest completions in GRPOTrainer._logs for its own printing; there is no public accessor.
        logs = getattr(self.trainer, "_logs", None) or {}
        prompts, completions = list(logs.get("prompt", [])), list(logs.get("completion", []))
        rewards = {name: list(values) for name, values in (logs.get("rewards") or {}).items()}
        sample = []
        for i in range(min(self.count, len(completions))):
            prompt = prompts[i] if i < len(prompts) else ""
            question = prompt[-1]["content"] if isinstance(prompt, list) and prompt else str(prompt)
            completion = completions[i]
            text = completion[-1]["content"] if isinstance(completion, list) and completion else str(completion)
            sample.append({"question": question, "completion": text,
                           "rewards": {name: values[i] for name, values in rewards.items() if i < len(values)}})
        return sample

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: D102 - TrainerCallback API
        if not state.is_world_process_zero or self.trainer is None or not logs or "reward" not in logs:
            return
        if state.global_step % self.every:
            return
        sample = self._sample()
        if not sample:
            return
        with self.path.open("a") as fh:
            for row in sample:
                fh.write(json.dumps({"step": state.global_step, **row}) + "\n")
        if self.tensorboard:
            self._write_tensorboard(args, state.global_step, sample)

    def _write_tensorboard(self, args, step: int, sample: list[dict[str, Any]]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        if self._writer is None:
            self._writer = SummaryWriter(log_dir=os.path.join(args.output_dir, "runs", "completions"))
        text = "\n\n".join(f"**Q:** {row['question']}\n\n```\n{row['completion']}\n```\n\nrewards: {row['rewards']}"
                           for row in sample)
        self._writer.add_text("completions", text, global_step=step)
        self._writer.flush()
