"""The model card pushed with a trained model: what it was trained from, how, and how well it does.

Reproducibility is the point: the card records the exact recipe, the commits of the model and data set the
run pinned, and the hub host they came from (never a token), plus the last training metrics and, when the
recipe asks for it, evaluation numbers beside the base model's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import yaml

from reasoner.hubclient.calls import Source, endpoint_host
from reasoner.recipe.load import Recipe

KEY_METRICS = ("reward", "rewards/correctness/mean", "rewards/strict_format/mean", "rewards/soft_format/mean",
               "rewards/xml_count/mean", "rewards/integer/mean", "kl", "completions/mean_length")


def _front_matter(recipe: Recipe, model: Source, datasets: Sequence[Source]) -> dict[str, Any]:
    formats = sorted({source.answer.format_name for source in recipe.task_sources})
    meta: dict[str, Any] = {"library_name": "transformers", "tags": ["reasoner", "grpo", "trl", *formats, "reasoning"],
                            "pipeline_tag": "text-generation"}
    if model.kind == "hub":
        meta["base_model"] = model.id
    if any(dataset.kind == "hub" for dataset in datasets):
        meta["datasets"] = [dataset.id for dataset in datasets if dataset.kind == "hub"]
    return meta


def _dataset_rows(recipe: Recipe, datasets: Sequence[Source]) -> list[str]:
    """Provenance rows for each data set of the task: where it came from, the commit, how answers were read."""
    rows = []
    for task, dataset in zip(recipe.task_sources, datasets):
        weight = f", weight {task.weight:g}" if len(datasets) > 1 else ""
        config = f"config `{task.config}`, " if task.config else ""
        rows.append(f"| data set | `{dataset.id}` ({config}split `{task.split}`, answer format "
                    f"`{task.answer.format_name}`{weight}) |")
        rows.append(f"| data set commit | `{dataset.commit or dataset.revision or dataset.kind}` |")
    holdout = recipe.eval.holdout
    if holdout:
        rows.append(f"| evaluation hold-out | {holdout:g} of each data set without a `{recipe.eval.split}` split, "
                    f"seeded by `seed` {recipe.seed}, kept out of training |")
    return rows


def _training_rows(stats: Any) -> list[str]:
    rows = [f"| training rows | {getattr(stats, 'kept', '?')} kept, {getattr(stats, 'dropped_no_answer', '?')} without "
            f"an answer, {getattr(stats, 'dropped_too_long', '?')} too long |"]
    if hasattr(stats, "mixture_summary"):
        rows.append(f"| training rows after mixing | {stats.mixture_summary()} |")
    return rows


def _last_metrics(log_history: Sequence[dict[str, Any]]) -> dict[str, float]:
    last: dict[str, float] = {}
    for entry in log_history:
        for key in KEY_METRICS:
            if isinstance(entry.get(key), (int, float)):
                last[key] = float(entry[key])
    return last


def render_model_card(recipe: Recipe, *, sources: Sequence[Source], stats: Any,
                      log_history: Sequence[dict[str, Any]], eval_section: str | None = None) -> str:
    """The card's markdown; ``sources`` is the model, then each data set of the task."""
    model, *datasets = sources
    steps = max((int(e.get("step", 0)) for e in log_history), default=0)
    lines = ["---", yaml.safe_dump(_front_matter(recipe, model, datasets), sort_keys=False).strip(), "---", "",
             f"# {recipe.hub.repo_id or recipe.name}", "",
             f"Trained with GRPO (TRL's GRPOTrainer) by `reasoner` from the recipe `{recipe.name}`.", "",
             "## Provenance", "",
             "| | |", "|---|---|",
             f"| base model | `{model.id}` |",
             f"| base model commit | `{model.commit or model.revision or model.kind}` |",
             *_dataset_rows(recipe, datasets),
             *([f"| hub host | `{endpoint_host()}` |"] if any(s.kind == "hub" for s in sources) else []),
             *_training_rows(stats),
             f"| optimizer steps | {steps} |", ""]
    metrics = _last_metrics(log_history)
    if metrics:
        lines += ["## Last logged training metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4g} |" for k, v in metrics.items()]
        lines.append("")
    if eval_section:
        lines += ["## Evaluation", "", eval_section.strip(), ""]
    lines += ["## Recipe", "", "```yaml", recipe.to_yaml().strip(), "```", ""]
    return "\n".join(lines)


def write_model_card(output_dir: Path, recipe: Recipe, **kwargs: Any) -> Path:
    path = output_dir / "README.md"
    path.write_text(render_model_card(recipe, **kwargs))
    return path
