"""``reasoner train --dry-run``: everything a job would refuse, refused on a login node in seconds, no model loaded.

A recipe that only fails inside the job (a wrong column, an answer format that reads no row, a reward that
raises) costs a queue wait and an allocation. The dry run does the job's own checks in the job's own order, up to
the model: the recipe is resolved and validated, the data sets are read as training reads them (hub data sets
pinned through ``HF_ENDPOINT`` and fetched into the cache, local ones read in place with no request at all), the
rows are prepared and counted, and every reward is called on a trial batch of those rows.

Standard output is the resolved recipe as YAML followed by the report as YAML comments, so it still loads as the
recipe. Prompts are not measured against ``dataset.max_prompt_tokens`` (that needs the model's tokenizer); the
report says so.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from reasoner.recipe.load import Recipe

__all__ = ["dry_run"]

SHOWN_PROMPTS = 2
SHOWN_CHARS = 400  # of each message: enough to see the system prompt, the few-shot turns and the question


def _comments(text: str) -> str:
    return "".join(f"# {line}".rstrip() + "\n" for line in text.splitlines() or [""])


def _render(messages: list[dict[str, Any]]) -> str:
    """Chat messages as the model will be asked them, one role per block (the chat template applies in training)."""
    blocks = []
    for message in messages:
        content = str(message.get("content", ""))
        if len(content) > SHOWN_CHARS:
            content = content[:SHOWN_CHARS] + f" [... {len(content) - SHOWN_CHARS} more characters]"
        blocks.append(f"  [{message.get('role')}] " + content.replace("\n", "\n    "))
    return "\n".join(blocks)


def _data_lines(recipe: Recipe, fetched: list[Any], stats: Any) -> list[str]:
    lines = []
    for task, source in zip(recipe.task_sources, fetched):
        where = source.describe() if source.kind != "local" else f"{source.id} (local file or folder)"
        lines.append(f"data set {where}, split {task.split}: question column '{task.question_column}', answer "
                     f"column '{task.answer_column}', answer format {task.format.name}")
    lines.append(f"rows: {stats.summary()}")
    lines.append(f"training sees {stats.mixture_summary()}")
    limit = recipe.dataset.max_prompt_tokens
    if limit is not None:
        lines.append(f"prompt lengths not measured here (that needs the model's tokenizer): training drops prompts "
                     f"over {limit} tokens and logs how many")
    return lines


def dry_run(recipe: Recipe, write: Callable[[str], None]) -> None:
    """Read the data and try the rewards, then print the resolved recipe and the report; any problem is a
    UserError, and then nothing but its one line is printed."""
    from reasoner.rewards import get_reward_funcs
    from reasoner.rewards.trial import TRIAL_ROWS, try_rewards
    from reasoner.train.taskdata import fetch_datasets, load_training_data
    from reasoner.train.grpoconfig import check_portable_grpo_config
    from reasoner.train.tracking import check_report_to

    check_report_to(recipe.grpo.get("report_to"))  # refused by transformers only once the trainer is built
    left_to_job = check_portable_grpo_config(recipe.grpo, list(recipe.rewards.values()))
    fetched = fetch_datasets(recipe)
    prepared, stats = load_training_data(recipe, fetched, tokenizer=None)
    machine = f" ({', '.join(left_to_job)}: checked on the job's machine)" if left_to_job else ""
    report = [f"grpo: TRL's GRPOConfig accepts the section{machine}", *_data_lines(recipe, fetched, stats)]
    for index in range(min(SHOWN_PROMPTS, len(prepared))):
        row = prepared[index]
        report.append(f"prompt {index + 1} of {len(prepared)} (gold answer {row['answer']!r}):\n{_render(row['prompt'])}")
    funcs = get_reward_funcs(recipe.rewards, args=recipe.reward_args, base_dir=Path(recipe.source).parent)
    try_rewards(funcs, list(recipe.rewards), prepared)
    weights = ", ".join(f"{name}: {weight:g}" for name, weight in recipe.rewards.items())
    report += [f"rewards (final, name: weight): {weights}",
               f"each reward called on a trial batch of {2 * min(TRIAL_ROWS, len(prepared))} completions: ok",
               "dry run passed: the data loads and every reward runs; no model was loaded"]
    write(recipe.to_yaml() + "".join(_comments(line) for line in report))
