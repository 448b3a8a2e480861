"""A recipe's task as data: which data sets, which columns, and how their gold answers are read.

A recipe describes one data set in its ``dataset`` section, or several under ``dataset.mix``, each with its own
id, config, split, revision, columns, answer format and ``weight``. Here those sections become a list of
``TaskSource`` values that training and evaluation both read, so they always ask the same questions the same
way. Validation happens with the rest of the recipe, before anything loads.

Weights follow open-r1's mixtures: a weight is the share of that data set's rows the mixture takes (0.5: a
random half; 1: every row; 2: every row twice), so proportions follow from the weights and the sizes.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field, fields
from typing import Any, Mapping, Sequence

from reasoner.errors import UserError
from reasoner.tasks.choice import DEFAULT_CHOICE_LINE, DEFAULT_CHOICES_TEMPLATE, ChoiceLayout, check_templates
from reasoner.tasks.formats import AnswerFormat, AnswerSpec, answer_format

__all__ = ["CHOICE_KEYS", "MIX_ENTRY_KEYS", "TaskSource", "check_task", "mixture_sources", "task_sources"]

# Keys one ``dataset.mix`` entry may hold, with their defaults (None: the recipe's own value, see below).
MIX_ENTRY_KEYS: dict[str, Any] = {
    "id": None, "config": None, "split": "train", "revision": "main", "question_column": "question",
    "answer_column": "answer", "system_column": None, "weight": 1.0, "limit": None, "answer": None,
    "eval_split": None, "choices_column": None, "choice_columns": None, "choices_template": None, "choice_line": None,
}
# The dataset keys that lay out multiple-choice options (see reasoner.tasks.choice).
CHOICE_KEYS = ("choices_column", "choice_columns", "choices_template", "choice_line")
ANSWER_KEYS = tuple(f.name for f in fields(AnswerSpec))


@dataclass
class TaskSource:
    """One data set of a task: where its rows are, which columns hold what, and how its answers are read."""

    id: str
    config: str | None = None
    split: str = "train"
    revision: str | None = "main"
    question_column: str = "question"
    answer_column: str = "answer"
    system_column: str | None = None
    weight: float = 1.0
    limit: int | None = None
    answer: AnswerSpec = field(default_factory=AnswerSpec)
    eval_split: str | None = None
    choices_column: str | None = None
    choice_columns: list[str] | None = None
    choices_template: str | None = None
    choice_line: str | None = None

    @property
    def format(self) -> AnswerFormat:
        return answer_format(self.answer)

    @property
    def choices(self) -> ChoiceLayout | None:
        """The options layout of a multiple-choice data set whose options sit in their own columns, else None."""
        if not self.choices_column and not self.choice_columns:
            return None
        return ChoiceLayout(self.choices_column, tuple(self.choice_columns or ()),
                            self.choices_template or DEFAULT_CHOICES_TEMPLATE, self.choice_line or DEFAULT_CHOICE_LINE)

    @property
    def columns(self) -> dict[str, str | None]:
        """Recipe key -> the column it names, for checking that the rows have them."""
        named = {"question_column": self.question_column, "answer_column": self.answer_column,
                 "system_column": self.system_column, "choices_column": self.choices_column}
        named.update({f"choice_columns[{i}]": column for i, column in enumerate(self.choice_columns or [])})
        return named

    def describe(self) -> str:
        config = f" ({self.config})" if self.config else ""
        return f"{self.id}{config} [{self.answer.format_name}]"


def task_sources(dataset: Any, answer: AnswerSpec | None = None, eval_split: str | None = None) -> list[TaskSource]:
    """The data sets of a recipe's ``dataset`` and ``answer`` sections (validated already), in recipe order."""
    answer = answer or AnswerSpec()
    if dataset.mix:
        return mixture_sources(dataset.mix, answer, eval_split)
    return [TaskSource(
        id=dataset.id, config=dataset.config, split=dataset.split, revision=dataset.revision,
        question_column=dataset.question_column, answer_column=dataset.answer_column,
        system_column=dataset.system_column, answer=answer, eval_split=eval_split, choices_column=dataset.choices_column,
        choice_columns=dataset.choice_columns, choices_template=dataset.choices_template, choice_line=dataset.choice_line)]


def mixture_sources(mix: Sequence[Mapping[str, Any]], answer: AnswerSpec | Mapping[str, Any] | str | None = None,
                    eval_split: str | None = None) -> list[TaskSource]:
    """The data sets of a ``dataset.mix`` list (validated already); an entry without its own ``answer`` uses ``answer``."""
    sources = []
    for entry in mix:
        values = {**MIX_ENTRY_KEYS, **entry}
        values["answer"] = AnswerSpec.of(values["answer"] if values["answer"] is not None else answer)
        values["eval_split"] = values["eval_split"] or eval_split
        values["weight"] = float(values["weight"])
        sources.append(TaskSource(**values))
    return sources


def check_task(dataset: Any, answer: AnswerSpec) -> None:
    """Refuse an answer spec or a mixture that cannot work, in one line naming the key and the fix."""
    answer_format(answer)
    if dataset.system_column is not None and not dataset.system_column:
        raise UserError("dataset.system_column is empty: name the column that holds each row's system prompt, or null")
    _check_choices(dataset.choices_column, dataset.choice_columns, dataset.choices_template, dataset.choice_line,
                   answer, "dataset")
    for index, entry in enumerate(dataset.mix):
        _check_mix_entry(index, entry)
        _check_choices(*(entry.get(key) for key in CHOICE_KEYS),
                       AnswerSpec.of(entry["answer"] if entry.get("answer") is not None else answer), f"dataset.mix[{index}]")


def _check_choices(column: Any, columns: Any, template: Any, line: Any, answer: AnswerSpec, where: str) -> None:
    """Options in their own columns belong to a choice task, and their templates must render."""
    if column is not None and (not isinstance(column, str) or not column):
        raise UserError(f"{where}.choices_column must name a column (a list of options or {{label, text}}), got {column!r}")
    if columns is not None and (not isinstance(columns, list) or not columns
                                or not all(isinstance(c, str) and c for c in columns)):
        raise UserError(f"{where}.choice_columns must list the option columns in order, e.g. [A, B, C, D], got {columns!r}")
    if column and columns:
        raise UserError(f"{where} sets both choices_column and choice_columns: keep the one that holds the options")
    check_templates(template, line, where)
    if (column or columns) and answer.format_name != "choice":
        raise UserError(f"{where} lays out options (choices_column/choice_columns) but answer.format is not 'choice': "
                        "set answer.format: choice")


def _check_mix_entry(index: int, entry: Any) -> None:
    where = f"dataset.mix[{index}]"
    if not isinstance(entry, Mapping):
        raise UserError(f"{where} must be a mapping with at least an id (a hub data set, a path or 'generated')")
    for key in entry:
        if key not in MIX_ENTRY_KEYS:
            close = difflib.get_close_matches(str(key), list(MIX_ENTRY_KEYS), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"valid keys: {', '.join(MIX_ENTRY_KEYS)}"
            raise UserError(f"unknown key '{key}' in {where}: {hint}")
    if not isinstance(entry.get("id"), str) or not entry["id"].strip():
        raise UserError(f"{where} has no id: set id to a hub data set, a local file or folder, or 'generated'")
    for key in ("config", "revision", "system_column", "eval_split"):
        if entry.get(key) is not None and not isinstance(entry[key], str):
            raise UserError(f"{where}.{key} must be a string or null, got {entry[key]!r}")
    for key in ("split", "question_column", "answer_column"):
        if key in entry and (not isinstance(entry[key], str) or not entry[key]):
            raise UserError(f"{where}.{key} must be a non-empty string, got {entry[key]!r}")
    weight = entry.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight <= 0:
        raise UserError(f"{where}.weight must be a number above 0 (the share of its rows to use; 1 = all), got {weight!r}")
    limit = entry.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0):
        raise UserError(f"{where}.limit must be a positive number of rows or null, got {limit!r}")
    if entry.get("answer") is not None:
        if not isinstance(entry["answer"], Mapping):
            raise UserError(f"{where}.answer must be a mapping like {{format: math}}, got {entry['answer']!r}")
        unknown = set(entry["answer"]) - set(ANSWER_KEYS)
        if unknown:
            raise UserError(f"unknown key '{sorted(unknown)[0]}' in {where}.answer: valid keys: {', '.join(ANSWER_KEYS)}")
        answer_format(entry["answer"])
