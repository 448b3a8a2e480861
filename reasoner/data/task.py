"""A recipe's task data: every data set of the task loaded, prepared with its own answer format, and mixed.

Training (``prepare_task``) and evaluation (``task_questions``) both start from the recipe's ``TaskSource``
list, so the model is evaluated on questions read exactly the way it was trained on them: the same columns,
the same system prompt (or the row's own), and the same answer format.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from reasoner.data.holdout import held_out_rows, lacks_split
from reasoner.data.mixture import mix_datasets, mix_indices
from reasoner.data.prepare import PrepStats, prepare_dataset, usable_rows
from reasoner.data.sources import load_rows
from reasoner.tasks.spec import TaskSource

if TYPE_CHECKING:  # datasets is slow to import; the CLI imports this package for every command.
    from datasets import Dataset

__all__ = ["prepare_task", "task_questions", "training_row_sources"]


def _rows(source: TaskSource, location: str, revision: str | None, split: str, num_generated: int, seed: int):
    """The raw rows of one source, read from ``location`` (its id, or where its pinned snapshot is)."""
    return load_rows(location, config=source.config, split=split, revision=revision,
                     question_column=source.question_column, answer_column=source.answer_column,
                     num_generated=num_generated, seed=seed, system_column=source.system_column,
                     columns=source.columns)


def _without_holdout(rows, source: TaskSource, location: str, holdout: float | None, eval_split: str, seed: int):
    """The rows training may see, and how many were held out for evaluation (none for a source with a test split)."""
    if holdout is None or not lacks_split(location, source.eval_split or eval_split):
        return rows, 0
    held = held_out_rows(len(rows), holdout, seed, source.id)
    return rows.select([index for index in range(len(rows)) if index not in held]), len(held)


def prepare_task(
    sources: Sequence[TaskSource], locations: Sequence[str], *, system: str | None = "default",
    few_shot: Sequence[Mapping[str, Any]] | None = None, tokenizer: Any = None,
    max_prompt_tokens: int | None = None, num_generated: int = 256, seed: int = 42, limit: int | None = None,
    holdout: float | None = None, eval_split: str = "test",
) -> "tuple[Dataset, PrepStats, list[PrepStats]]":
    """Training rows of every source (read from ``locations``, e.g. pinned local snapshots), mixed by weight.

    One source keeps its order and takes ``limit`` raw rows; a mixture takes each source's own ``limit``, mixes
    by weight with ``seed`` and keeps the first ``limit`` mixed rows. With ``holdout``, a source without an
    ``eval_split`` of its own keeps a seeded slice of its rows out of training for evaluation. Returns the rows,
    the summed counts (with the rows per source after mixing) and the counts per source.
    """
    prepared, per_source = [], []
    for source, location in zip(sources, locations):
        rows = _rows(source, location, None, source.split, num_generated, seed)
        rows, held = _without_holdout(rows, source, location, holdout, eval_split, seed)
        own_limit = source.limit if len(sources) > 1 else limit
        if own_limit:
            rows = rows.select(range(min(own_limit, len(rows))))
        part, stats = prepare_dataset(
            rows, system=system, few_shot=few_shot, question_column=source.question_column,
            answer_column=source.answer_column, tokenizer=tokenizer, max_prompt_tokens=max_prompt_tokens,
            answer=source.answer, system_column=source.system_column, choices=source.choices)
        stats.held_out = held
        prepared.append(part)
        per_source.append(stats)
    total = sum(per_source[1:], per_source[0])
    if len(sources) == 1:
        total.mixed = {sources[0].describe(): len(prepared[0])}
        return prepared[0], total, per_source
    order = mix_indices([len(part) for part in prepared], [source.weight for source in sources], seed)
    mixed = mix_datasets(prepared, [source.weight for source in sources], seed)
    if limit:
        mixed, order = mixed.select(range(min(limit, len(mixed)))), order[:limit]
    total.mixed = {source.describe(): sum(1 for part, _ in order if part == index) for index, source in enumerate(sources)}
    return mixed, total, per_source


def task_questions(
    sources: Sequence[TaskSource], *, split: str | None = None, limit: int | None = None, num_generated: int = 200,
    seed: int = 42, holdout: float | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Evaluation questions ``{question, gold, compare_as, read_from, system}`` and how many rows were passed over.

    Each source is read from its own id and revision at its ``eval_split``, else ``split``, else ``test``; one
    without such a split gives its held-out slice when ``holdout`` is set. One source gives its first ``limit``
    usable rows in order; a mixture takes every source's usable rows by weight as training does, but never
    more than once (a weight above 1 repeats rows for training only), shuffled with ``seed``, and keeps the first
    ``limit``. No question is asked twice.
    """
    per_source: list[list[dict[str, Any]]] = []
    dropped = 0
    for source in sources:
        wanted = source.eval_split or split or "test"
        rows = _rows(source, source.id, source.revision, wanted, num_generated, seed)
        if holdout is not None and lacks_split(source.id, wanted):
            rows = rows.select(sorted(held_out_rows(len(rows), holdout, seed, source.id)))
        stats = PrepStats()
        fmt = source.format
        items = usable_rows(rows, question_column=source.question_column, answer_column=source.answer_column,
                            fmt=fmt, system_column=source.system_column, stats=stats, choices=source.choices)
        per_source.append([{key: value for key, value in item.items() if key != "row"}
                           | {"compare_as": fmt.comparison.name, "read_from": fmt.read_from, "source": source.id}
                           for item in items])
        dropped += stats.dropped_no_answer + stats.dropped_no_question
    order = mix_indices([len(items) for items in per_source],
                        [min(source.weight, 1.0) for source in sources], seed) if len(per_source) > 1 else [
        (0, row) for row in range(len(per_source[0]))]
    questions, seen = [], set()
    for part, row in order:
        item = per_source[part][row]
        key = (item["question"], item["gold"], item["system"])
        if key not in seen:
            seen.add(key)
            questions.append(item)
    return (questions[:limit] if limit else questions), dropped


def training_row_sources(sources: Sequence[TaskSource], *, split: str | None = None,
                         holdout: float | None = None) -> list[str]:
    """The sources whose evaluation questions are training rows: no split of their own and no ``holdout``."""
    if holdout is not None:
        return []
    return [source.id for source in sources if lacks_split(source.id, source.eval_split or split or "test")]
