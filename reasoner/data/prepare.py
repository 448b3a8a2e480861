"""Preparing rows for GRPO: chat prompts, the gold answer as the task's format reads it, and honest counts.

``prepare_dataset`` turns raw rows into ``prompt`` (chat messages), ``answer`` (the gold answer, which TRL hands
to the rewards as the ``answer`` keyword) and ``compare_as`` (how the ``correctness`` reward compares it:
``number``, ``math``, ``exact`` or ``choice``). Rows that cannot be used are dropped and counted in
``PrepStats``, never silently, so a recipe pointing at the wrong column or a too small token limit shows up in
the numbers instead of as a model that does not learn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reasoner.data.columns import uniform_columns
from reasoner.data.prompts import DEFAULT_SYSTEM, build_prompt, check_few_shot, resolve_system_prompt
from reasoner.data.sources import check_columns
from reasoner.errors import UserError
from reasoner.tasks.choice import ChoiceLayout
from reasoner.tasks.formats import AnswerFormat, answer_format

if TYPE_CHECKING:  # datasets is slow to import; the CLI imports this package for every command.
    from datasets import Dataset

__all__ = ["RESERVED", "PrepStats", "prepare_dataset", "reward_columns", "usable_rows"]

# Columns of a prepared row that are ours: the chat prompt, the gold answer, how to compare it, where to read it.
RESERVED = ("prompt", "answer", "compare_as", "read_from")

_TOKENIZE_BATCH = 256


@dataclass
class PrepStats:
    """How many rows ``prepare_dataset`` kept and why it dropped the others."""

    kept: int = 0
    dropped_no_answer: int = 0
    dropped_too_long: int = 0
    dropped_no_question: int = 0
    # What a row dropped for "no answer" lacked, in the task's terms.
    missing: str = field(default="a numeric '#### ' answer", compare=False)
    # Rows kept out of training for evaluation (eval.holdout), and the rows per source after mixing.
    held_out: int = field(default=0, compare=False)
    mixed: dict[str, int] = field(default_factory=dict, compare=False)

    def mixture_summary(self) -> str:
        """The rows training sees after mixing, per source and in total: "17 rows after mixing (a: 9, b: 8)"."""
        total = sum(self.mixed.values()) if self.mixed else self.kept
        parts = ", ".join(f"{name}: {count}" for name, count in self.mixed.items())
        held = f"; {self.held_out} held out for evaluation" if self.held_out else ""
        return f"{total} rows after mixing" + (f" ({parts})" if len(self.mixed) > 1 else "") + held

    @property
    def total(self) -> int:
        return self.kept + self.dropped_no_answer + self.dropped_too_long + self.dropped_no_question

    def summary(self) -> str:
        """One line for the training log."""
        return (
            f"kept {self.kept} of {self.total} rows ({self.dropped_no_answer} without {self.missing}, "
            f"{self.dropped_too_long} over the prompt token limit, {self.dropped_no_question} without a question)"
        )

    def __add__(self, other: "PrepStats") -> "PrepStats":
        missing = self.missing if self.missing == other.missing else "a usable gold answer"
        return PrepStats(self.kept + other.kept, self.dropped_no_answer + other.dropped_no_answer,
                         self.dropped_too_long + other.dropped_too_long,
                         self.dropped_no_question + other.dropped_no_question, missing,
                         self.held_out + other.held_out)


def _column_names(rows: Any) -> list[str]:
    names = getattr(rows, "column_names", None)
    if names is not None:
        return list(names)
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def usable_rows(
    rows: Any, *, question_column: str, answer_column: str, fmt: AnswerFormat, system_column: str | None = None,
    limit: int | None = None, stats: PrepStats | None = None, choices: ChoiceLayout | None = None,
) -> list[dict[str, Any]]:
    """``{question, gold, system, row}`` for each row with a question and a gold answer ``fmt`` can read, in order.

    Stops after ``limit`` usable rows; every row passed over is counted in ``stats``. ``system`` is the row's
    own system prompt (from ``system_column``) or None; ``row`` is the raw row, whose columns reach the rewards.
    With a ``choices`` layout the question carries its options and the gold key is read against them.
    """
    stats = stats if stats is not None else PrepStats()
    usable: list[dict[str, Any]] = []
    for row in rows:
        if limit is not None and len(usable) >= limit:
            break
        question = row.get(question_column)
        if choices is not None:
            options = choices.options(row)
            gold = fmt.read_choice_gold(row.get(answer_column), options[1], len(options[0])) if options else None
            if options and isinstance(question, str):
                question = choices.render(question, options[0])
        else:
            gold = fmt.read_gold(row.get(answer_column))
        if gold is None:
            stats.dropped_no_answer += 1
            continue
        if not isinstance(question, str) or not question.strip():
            stats.dropped_no_question += 1
            continue
        system = row.get(system_column) if system_column else None
        usable.append({"question": question, "gold": gold, "row": dict(row),
                       "system": system if isinstance(system, str) and system.strip() else None})
    return usable


def reward_columns(items: Sequence[Mapping[str, Any]], fmt: AnswerFormat, answer_column: str) -> dict[str, list]:
    """The columns every reward receives as keywords (TRL's convention): the row's own columns, and ``solution``.

    ``answer`` (the gold answer), ``compare_as`` and ``read_from`` are ours and win over a raw column of that name.
    ``solution`` is the row's own column when it has one; else the worked solution when the answer column holds
    one (a ``math`` answer read from its ``\\boxed{}``), else the gold answer, which is what TRL's rewards that
    read ``solution`` (``accuracy_reward``) expect.
    """
    names: dict[str, None] = {}
    for item in items:
        names.update(dict.fromkeys(item["row"]))
    columns = {name: [item["row"].get(name) for item in items] for name in names if name not in RESERVED}
    if "solution" not in columns:
        columns["solution"] = [_solution(item, fmt, answer_column) for item in items]
    return columns


def _solution(item: Mapping[str, Any], fmt: AnswerFormat, answer_column: str) -> str:
    raw = item["row"].get(answer_column)
    return str(raw) if fmt.name == "math" and isinstance(raw, str) and "\\boxed" in raw else item["gold"]


def _prompt_lengths(tokenizer: Any, prompts: list[list[dict]]) -> list[int]:
    """Token counts of the chat-templated prompts, as GRPOTrainer tokenizes them (generation prompt added)."""
    lengths: list[int] = []
    for start in range(0, len(prompts), _TOKENIZE_BATCH):
        batch = prompts[start : start + _TOKENIZE_BATCH]
        try:
            encoded = tokenizer.apply_chat_template(
                batch, add_generation_prompt=True, tokenize=True, return_dict=True
            )
        except ValueError as error:
            if "chat_template" in str(error) or "chat template" in str(error):
                raise UserError(
                    "the tokenizer has no chat template, so prompts cannot be built: use an instruct/chat model "
                    "or one whose tokenizer_config.json sets chat_template"
                ) from None
            raise
        lengths.extend(len(ids) for ids in encoded["input_ids"])
    return lengths


def prepare_dataset(
    rows: "Dataset | Sequence[Mapping[str, Any]]",
    *,
    system: str | None = DEFAULT_SYSTEM,
    few_shot: Sequence[Mapping[str, Any]] | None = None,
    question_column: str = "question",
    answer_column: str = "answer",
    tokenizer: Any = None,
    max_prompt_tokens: int | None = None,
    answer: str | Mapping[str, Any] | None = None,
    system_column: str | None = None,
    choices: ChoiceLayout | None = None,
) -> "tuple[Dataset, PrepStats]":
    """GRPO training rows: ``prompt`` (chat messages), ``answer`` (the gold answer), ``compare_as``, ``read_from``
    and every column of the raw row (see ``reward_columns``), which TRL hands to each reward as a keyword.

    ``answer`` is the task's answer format (a name or a recipe's ``answer`` section; GSM8K's when None).
    Drops, and counts, rows without a gold answer that format can read, rows with an empty question, and
    (with a tokenizer and ``max_prompt_tokens``) rows whose chat-templated prompt is longer than that. TRL 1.x
    no longer truncates prompts, so an over-long prompt would otherwise cost memory on every step.
    """
    from datasets import Dataset

    fmt = answer_format(answer)
    check_columns(_column_names(rows), {"question_column": question_column, "answer_column": answer_column,
                                        "system_column": system_column,
                                        **{f"choices ({c})": c for c in (choices.needed if choices else [])}},
                  "the data set")
    if max_prompt_tokens is not None and max_prompt_tokens <= 0:
        raise UserError(f"dataset.max_prompt_tokens must be a positive number of tokens, got {max_prompt_tokens}")
    system_text = resolve_system_prompt(system)
    examples = check_few_shot(few_shot)

    stats = PrepStats(missing=fmt.missing)
    usable = usable_rows(rows, question_column=question_column, answer_column=answer_column, fmt=fmt,
                         system_column=system_column, stats=stats, choices=choices)
    prompts = [build_prompt(item["question"], item["system"] or system_text, examples) for item in usable]

    if tokenizer is not None and max_prompt_tokens is not None and prompts:
        keep = [length <= max_prompt_tokens for length in _prompt_lengths(tokenizer, prompts)]
        stats.dropped_too_long = keep.count(False)
        prompts = [p for p, k in zip(prompts, keep) if k]
        usable = [item for item, k in zip(usable, keep) if k]

    stats.kept = len(prompts)
    if not prompts:
        raise UserError(
            f"no usable rows: {stats.summary()}; fix: check dataset.answer_column ('{answer_column}') holds "
            f"{fmt.expects} (answer.format {fmt.name}), dataset.question_column ('{question_column}'), "
            "and raise dataset.max_prompt_tokens if prompts were too long"
        )
    columns = {"prompt": prompts, "answer": [item["gold"] for item in usable],
               "compare_as": [fmt.comparison.name] * len(prompts), "read_from": [fmt.read_from] * len(prompts),
               **reward_columns(usable, fmt, answer_column)}
    return Dataset.from_dict(uniform_columns(columns)), stats
