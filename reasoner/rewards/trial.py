"""A trial batch for the recipe's rewards, before the model loads: a broken reward costs seconds, not a job.

Each reward is called once the way TRL's ``GRPOTrainer`` calls it: the keywords ``prompts``, ``completions``
and ``completion_ids``, every data set column, ``trainer_state``, ``log_extra`` and ``log_metric``. The
completions are two per row: one in the exact format holding the gold answer, one without tags. A reward that
raises, needs a keyword no column provides, or returns anything but one number per completion stops the run
here, in one line naming it.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from reasoner.errors import UserError
from reasoner.rewards.builtin import REWARDS, RewardFunc
from reasoner.rewards.loading import check_returned

__all__ = ["sample_batch", "try_rewards"]

TRIAL_ROWS = 2


def _as_completion(text: str, conversational: bool) -> Any:
    return [{"role": "assistant", "content": text}] if conversational else text


def sample_batch(dataset: Any, tokenizer: Any = None, rows: int = TRIAL_ROWS) -> dict[str, Any]:
    """The keywords of one small reward call on the first ``rows`` rows of a prepared data set."""
    from transformers import TrainerState

    picked = [dataset[index] for index in range(min(rows, len(dataset)))]
    prompts, texts, columns = [], [], {key: [] for key in dataset.column_names if key != "prompt"}
    for row in picked:
        gold = row.get("answer", "")
        for text in (f"<reasoning>\nWorking it out.\n</reasoning>\n<answer>\n{gold}\n</answer>\n", f"I think {gold}."):
            prompts.append(row["prompt"])
            texts.append(text)
            for key in columns:
                columns[key].append(row[key])
    conversational = bool(prompts) and isinstance(prompts[0], list)
    encode = (lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]) if tokenizer is not None else (
        lambda text: list(range(len(text.split()))))
    return {"prompts": prompts, "completions": [_as_completion(t, conversational) for t in texts],
            "completion_ids": [encode(t) for t in texts], **columns, "trainer_state": TrainerState(),
            "log_extra": lambda *args, **kwargs: None, "log_metric": lambda *args, **kwargs: None}


def _missing_keywords(fn: RewardFunc, batch: dict[str, Any]) -> list[str]:
    target = getattr(fn, "__wrapped__", fn)
    try:
        parameters = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return []
    provided = set(batch) | ({"solution"} if "answer" in batch else set())
    return [p.name for p in parameters
            if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in provided]


def try_rewards(funcs: Sequence[RewardFunc], names: Sequence[str], dataset: Any, tokenizer: Any = None) -> None:
    """Call every reward on a trial batch of ``dataset``; a UserError names the first one that fails."""
    batch = sample_batch(dataset, tokenizer)
    count = len(batch["completions"])
    columns = ", ".join(key for key in batch if key not in ("trainer_state", "log_extra", "log_metric"))
    for name, fn in zip(names, funcs):
        missing = _missing_keywords(fn, batch)
        if missing:
            raise UserError(f"reward '{name}' needs the keyword '{missing[0]}', which no data set column provides "
                            f"(it gets: {columns}): give it a default or add the column")
        try:
            values = fn(**batch)
        except UserError:
            raise
        except Exception as error:  # noqa: BLE001 - a built-in or unguarded callable: still one line
            first = (str(error).strip().splitlines() or [""])[0]
            raise UserError(f"reward '{name}' raised {type(error).__name__}: {first} on a trial batch of {count} "
                            f"completions (keywords: {columns}): fix the function") from None
        if name not in REWARDS:
            check_returned(name, values, count)
