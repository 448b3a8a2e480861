"""A recipe's task data: every data set of the task loaded, prepared with its own answer format, and mixed.

Training (``prepare_task``) and evaluation (``task_questions``) both start from the recipe's ``TaskSource``
list, so the model is evaluated on questions read exactly the way it was trained on them: the same columns,
the same system prompt (or the row's own), and the same answer format.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from reasoner.data.mixture import mix_datasets, mix_indices
from reasoner.data.prepare import PrepStats, prepare_dataset, usable_rows
from reasoner.data.sources import load_rows
from reasoner.tasks.spec import TaskSource

if TYPE_CHECKING:  # datasets is slow to import; the CLI imports this package for every command.
    from datasets import Dataset

__all__ = ["prepare_task", "task_questions"]


def _rows(source: TaskSource, location: str, revision: str | None, split: str, num_generated: int, seed: int):
    """The raw rows of one source, read from ``location`` (its id, or where its pinned snapshot is)."""
    return load_rows(location, config=source.config, split=split, revision=revision,
                     question_column=source.question_column, answer_column=source.answer_column,
                     num_generated=num_generated, seed=seed, system_column=source.system_column,
                     columns=source.columns)


def prepare_task(
    sources: Sequence[TaskSource], locations: Sequence[str], *, prompt: Mapping[str, Any], tokenizer: Any = None,
    max_prompt_tokens: int | None = None, num_generated: int = 256, seed: int = 42, limit: int | None = None,
) -> "tuple[Dataset, PrepStats, list[PrepStats]]":
    """Training rows of every source (read from ``locations``, e.g. pinned local snapshots), mixed by weight.

    One source keeps its order and takes ``limit`` raw rows; a mixture takes each source's own ``limit``, mixes
    by weight with ``seed`` and keeps the first ``limit`` mixed rows. Returns the rows, the summed counts and the
    counts per source.
    """
    prepared, per_source = [], []
    for source, location in zip(sources, locations):
        rows = _rows(source, location, None, source.split, num_generated, seed)
        own_limit = source.limit if len(sources) > 1 else limit
        if own_limit:
            rows = rows.select(range(min(own_limit, len(rows))))
        part, stats = prepare_dataset(
            rows, system=prompt.get("system"), few_shot=prompt.get("few_shot"), question_column=source.question_column,
            answer_column=source.answer_column, tokenizer=tokenizer, max_prompt_tokens=max_prompt_tokens,
            answer=source.answer, system_column=source.system_column, choices=source.choices)
        prepared.append(part)
        per_source.append(stats)
    total = sum(per_source[1:], per_source[0])
    if len(sources) == 1:
        return prepared[0], total, per_source
    mixed = mix_datasets(prepared, [source.weight for source in sources], seed)
    if limit:
        mixed = mixed.select(range(min(limit, len(mixed))))
    return mixed, total, per_source


def task_questions(
    sources: Sequence[TaskSource], *, split: str | None = None, limit: int | None = None, num_generated: int = 200,
    seed: int = 42,
) -> tuple[list[dict[str, Any]], int]:
    """Evaluation questions ``{question, gold, compare_as, system}`` and how many rows were passed over.

    Each source is read from its own id and revision at its ``eval_split``, else ``split``, else ``test``.
    One source gives its first ``limit`` usable rows in order; a mixture mixes all its sources' usable rows by
    weight with ``seed``, as training does, and keeps the first ``limit``.
    """
    per_source: list[list[dict[str, Any]]] = []
    dropped = 0
    for source in sources:
        rows = _rows(source, source.id, source.revision, source.eval_split or split or "test", num_generated, seed)
        stats = PrepStats()
        fmt = source.format
        items = usable_rows(rows, question_column=source.question_column, answer_column=source.answer_column,
                            fmt=fmt, system_column=source.system_column, stats=stats, choices=source.choices,
                            limit=limit if len(sources) == 1 else None)
        per_source.append([{**item, "compare_as": fmt.comparison.name} for item in items])
        dropped += stats.dropped_no_answer + stats.dropped_no_question
    if len(per_source) == 1:
        return per_source[0], dropped
    order = mix_indices([len(items) for items in per_source], [source.weight for source in sources], seed)
    mixed = [per_source[part][row] for part, row in order]
    return (mixed[:limit] if limit else mixed), dropped
