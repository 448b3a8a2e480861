"""GSM8K-style data: load rows, turn them into chat prompts with a gold number, and generate problems.

The flow is ``load_rows`` (a hub data set, a local file, or generated problems) then ``prepare_dataset``
(a ``prompt`` column of chat messages and an ``answer`` column with the gold number, which TRL hands to the
``correctness`` reward as the ``answer`` keyword). Rows that cannot be used are dropped and counted in
``PrepStats``, never silently, so a recipe pointing at the wrong column or a too small token limit shows up
in the numbers instead of as a model that does not learn.
"""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reasoner.errors import UserError
from reasoner.rewards import parse_number

if TYPE_CHECKING:  # datasets is slow to import; the CLI imports this module for every command.
    from datasets import Dataset

__all__ = [
    "GENERATED",
    "PrepStats",
    "SYSTEM_PROMPT",
    "build_prompt",
    "extract_gold",
    "generate_problems",
    "load_rows",
    "prepare_dataset",
    "resolve_system_prompt",
]

# The default system prompt: the exact shape the format rewards score (see reasoner.rewards).
SYSTEM_PROMPT = (
    "Solve the math problem step by step. Write your reasoning, then the final answer as a single number, "
    "exactly in this format:\n"
    "<reasoning>\n"
    "...\n"
    "</reasoning>\n"
    "<answer>\n"
    "...\n"
    "</answer>\n"
)

DEFAULT_SYSTEM = "default"
GENERATED = "generated"
GOLD_MARKER = "####"
_LOCAL_SUFFIXES = (".jsonl", ".json", ".parquet")
_TOKENIZE_BATCH = 256


def resolve_system_prompt(system: str | None) -> str:
    """``default`` (or None) means ``SYSTEM_PROMPT``; any other string is the system prompt, verbatim."""
    if system is None or system == DEFAULT_SYSTEM:
        return SYSTEM_PROMPT
    if not isinstance(system, str):
        raise UserError(f"prompt.system must be a string or 'default', not {type(system).__name__}")
    return system


def extract_gold(answer_field: Any) -> str | None:
    """The gold answer of a GSM8K answer field: the text after the last ``####``, stripped, commas removed.

    ``"...\\n#### 1,000"`` gives ``"1000"``. None without ``####`` or with nothing after it.
    """
    if answer_field is None:
        return None
    text = str(answer_field)
    if GOLD_MARKER not in text:
        return None
    gold = text.rpartition(GOLD_MARKER)[2].strip().replace(",", "")
    return gold or None


def _check_few_shot(few_shot: Sequence[Mapping[str, Any]] | None) -> list[Mapping[str, Any]]:
    examples = list(few_shot or [])
    for index, example in enumerate(examples):
        if not isinstance(example, Mapping) or not all(
            isinstance(example.get(key), str) for key in ("question", "answer")
        ):
            raise UserError(
                f"prompt.few_shot[{index}] must be a mapping with 'question' and 'answer' strings "
                "(the answer written exactly in the <reasoning>/<answer> format)"
            )
    return examples


def build_prompt(question: str, system: str | None, few_shot: Sequence[Mapping[str, Any]] | None) -> list[dict]:
    """Chat messages for one question: system, then a user/assistant turn per worked example, then the question.

    Worked examples teach the format far better than the system prompt alone on small models. An empty
    system string leaves the system message out (for chat templates without a system role).
    """
    system_text = resolve_system_prompt(system)
    messages: list[dict] = []
    if system_text:
        messages.append({"role": "system", "content": system_text})
    for example in _check_few_shot(few_shot):
        messages.append({"role": "user", "content": example["question"]})
        messages.append({"role": "assistant", "content": example["answer"]})
    messages.append({"role": "user", "content": question})
    return messages


# --------------------------------------------------------------------------------------------------------
# Generated problems: GSM8K-shaped rows ("question", "answer" ending "#### <number>") for demos and tests
# that must not depend on a download. Every step carries GSM8K's <<expression=result>> annotation.

_PEOPLE = (
    ("Mia", "she", "her"), ("Liam", "he", "his"), ("Ava", "she", "her"), ("Noah", "he", "his"),
    ("Zoe", "she", "her"), ("Omar", "he", "his"), ("Lena", "she", "her"), ("Ravi", "he", "his"),
    ("Sofia", "she", "her"), ("Kenji", "he", "his"), ("Amara", "she", "her"), ("Diego", "he", "his"),
)
_ITEMS = ("apples", "marbles", "stickers", "pencils", "cookies", "cards", "shells", "stamps", "beads", "eggs")


def _problem_add(rng: random.Random) -> tuple[str, str, int]:
    name, pronoun, _ = rng.choice(_PEOPLE)
    item = rng.choice(_ITEMS)
    a, b = rng.randint(5, 90), rng.randint(2, 60)
    r = a + b
    question = (
        f"{name} has {a} {item}. {pronoun.capitalize()} buys {b} more {item} at the market. "
        f"How many {item} does {name} have now?"
    )
    return question, f"{name} has {a} + {b} = <<{a}+{b}={r}>>{r} {item} now.", r


def _problem_subtract(rng: random.Random) -> tuple[str, str, int]:
    name, pronoun, _ = rng.choice(_PEOPLE)
    item = rng.choice(_ITEMS)
    a = rng.randint(20, 200)
    b = rng.randint(1, a - 1)
    r = a - b
    question = (
        f"{name} had {a} {item}. {pronoun.capitalize()} gave {b} of them to a friend. "
        f"How many {item} does {name} have left?"
    )
    return question, f"{name} has {a} - {b} = <<{a}-{b}={r}>>{r} {item} left.", r


def _problem_multiply(rng: random.Random) -> tuple[str, str, int]:
    name, _, _ = rng.choice(_PEOPLE)
    item = rng.choice(_ITEMS)
    a, b = rng.randint(2, 25), rng.randint(3, 40)
    r = a * b
    question = f"{name} fills {a} boxes with {b} {item} each. How many {item} are in the boxes altogether?"
    return question, f"The boxes hold {a} * {b} = <<{a}*{b}={r}>>{r} {item}.", r


def _problem_divide(rng: random.Random) -> tuple[str, str, int]:
    name, _, _ = rng.choice(_PEOPLE)
    item = rng.choice(_ITEMS)
    k, r = rng.randint(2, 12), rng.randint(2, 30)
    total = k * r
    question = (
        f"{name} shares {total} {item} equally among {k} friends. How many {item} does each friend get?"
    )
    return question, f"Each friend gets {total} / {k} = <<{total}/{k}={r}>>{r} {item}.", r


def _problem_change(rng: random.Random) -> tuple[str, str, int]:
    name, _, _ = rng.choice(_PEOPLE)
    item = rng.choice(("notebooks", "sandwiches", "tickets", "plants", "mugs", "books"))
    q, p = rng.randint(2, 9), rng.randint(2, 25)
    cost = q * p
    bill = next(b for b in (10, 20, 50, 100, 200, 500) if b > cost)
    r = bill - cost
    question = (
        f"{name} buys {q} {item} for ${p} each and pays with a ${bill} bill. "
        f"How much change, in dollars, does {name} get?"
    )
    steps = (
        f"The {item} cost {q} * ${p} = $<<{q}*{p}={cost}>>{cost}.\n"
        f"{name} gets ${bill} - ${cost} = $<<{bill}-{cost}={r}>>{r} in change."
    )
    return question, steps, r


def _problem_earnings(rng: random.Random) -> tuple[str, str, int]:
    name, pronoun, _ = rng.choice(_PEOPLE)
    rate, hours, days = rng.randint(8, 30), rng.randint(2, 10), rng.randint(2, 30)
    per_day = rate * hours
    r = per_day * days
    question = (
        f"{name} earns ${rate} an hour and works {hours} hours a day. "
        f"How many dollars does {pronoun} earn in {days} days?"
    )
    steps = (
        f"In a day {name} earns {rate} * {hours} = $<<{rate}*{hours}={per_day}>>{per_day}.\n"
        f"In {days} days {pronoun} earns {per_day} * {days} = $<<{per_day}*{days}={r}>>{r}."
    )
    return question, steps, r


def _problem_bakery(rng: random.Random) -> tuple[str, str, int]:
    trays, per_tray, extra = rng.randint(2, 12), rng.randint(6, 24), rng.randint(5, 80)
    morning = trays * per_tray
    r = morning + extra
    question = (
        f"A bakery bakes {trays} trays of {per_tray} muffins in the morning and {extra} more muffins in the "
        "afternoon. How many muffins does it bake in all?"
    )
    steps = (
        f"In the morning it bakes {trays} * {per_tray} = <<{trays}*{per_tray}={morning}>>{morning} muffins.\n"
        f"In all it bakes {morning} + {extra} = <<{morning}+{extra}={r}>>{r} muffins."
    )
    return question, steps, r


def _problem_pages(rng: random.Random) -> tuple[str, str, int]:
    name, pronoun, _ = rng.choice(_PEOPLE)
    per_day, days = rng.randint(5, 40), rng.randint(2, 14)
    read = per_day * days
    total = read + rng.randint(1, 300)
    r = total - read
    question = (
        f"{name}'s book has {total} pages. {pronoun.capitalize()} reads {per_day} pages a day for {days} days. "
        "How many pages are left to read?"
    )
    steps = (
        f"{name} reads {per_day} * {days} = <<{per_day}*{days}={read}>>{read} pages.\n"
        f"There are {total} - {read} = <<{total}-{read}={r}>>{r} pages left."
    )
    return question, steps, r


def _problem_savings(rng: random.Random) -> tuple[str, str, int]:
    name, pronoun, possessive = rng.choice(_PEOPLE)
    weekly, weeks, saved = rng.randint(3, 25), rng.randint(2, 20), rng.randint(5, 120)
    missing = weekly * weeks
    price = saved + missing
    question = (
        f"{name} wants a bike that costs ${price}. {pronoun.capitalize()} has saved ${saved} and puts ${weekly} "
        f"into {possessive} savings every week. How many weeks until {pronoun} can buy the bike?"
    )
    steps = (
        f"{name} still needs {price} - {saved} = $<<{price}-{saved}={missing}>>{missing}.\n"
        f"That takes {missing} / {weekly} = <<{missing}/{weekly}={weeks}>>{weeks} weeks."
    )
    return question, steps, weeks


_TEMPLATES = (
    _problem_add, _problem_subtract, _problem_multiply, _problem_divide,
    _problem_change, _problem_earnings, _problem_bakery, _problem_pages, _problem_savings,
)


def generate_problems(n: int, seed: int) -> list[dict]:
    """``n`` GSM8K-shaped arithmetic word problems, the same for the same seed.

    Rows are ``{"question": ..., "answer": "<steps with <<a op b=c>> annotations>\\n#### <number>"}``;
    templates cover addition, subtraction, multiplication, exact division, money and two-step problems.
    """
    if n < 0:
        raise UserError(f"cannot generate {n} problems: dataset.num_generated must be a positive number")
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        question, steps, result = rng.choice(_TEMPLATES)(rng)
        rows.append({"question": question, "answer": f"{steps}\n{GOLD_MARKER} {result}"})
    return rows


# --------------------------------------------------------------------------------------------------------
# Loading rows


def _is_local_source(source: str) -> bool:
    if Path(source).expanduser().exists():
        return True
    return source.startswith(("/", "./", "../", "~", ".\\")) or source.endswith(_LOCAL_SUFFIXES)


def _read_json_rows(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None  # maybe JSON lines under a .json name, as the hub often has
        if isinstance(data, list):
            return _only_objects(data, path)
        if isinstance(data, dict):
            lists = [value for value in data.values() if isinstance(value, list)]
            if len(lists) == 1:  # {"data": [...]}
                return _only_objects(lists[0], path)
            raise UserError(f"{path}: a .json data file must hold a list of row objects (or JSON lines)")
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise UserError(f"{path}:{number}: not valid JSON ({error.msg}): fix or remove that line") from None
    return _only_objects(rows, path)


def _only_objects(rows: list, path: Path) -> list[dict]:
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise UserError(f"{path}: row {index + 1} is a {type(row).__name__}, not an object with named columns")
    return rows


def _read_file(path: Path) -> "Dataset":
    from datasets import Dataset

    if path.suffix == ".parquet":
        import pyarrow.parquet as pq
        from datasets.table import InMemoryTable

        return Dataset(InMemoryTable(pq.read_table(path)))
    if path.suffix in (".jsonl", ".json"):
        return Dataset.from_list(_read_json_rows(path))
    raise UserError(f"cannot read {path}: use a .jsonl, .json or .parquet file, or a folder with <split>.jsonl")


def _load_local(source: str, config: str | None, split: str) -> "Dataset":
    path = Path(source).expanduser()
    if path.is_file():
        return _read_file(path)
    if path.is_dir():
        for suffix in _LOCAL_SUFFIXES:
            candidate = path / f"{split}{suffix}"
            if candidate.is_file():
                return _read_file(candidate)
        # A folder laid out like a hub data set repository (e.g. a downloaded snapshot).
        import datasets

        try:
            return datasets.load_dataset(str(path), config, split=split)
        except (ValueError, FileNotFoundError, datasets.exceptions.DatasetsError) as error:
            present = ", ".join(sorted(p.name for p in path.iterdir())[:20]) or "nothing"
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise UserError(
                f"no '{split}' data in folder {path} (it holds: {present}; {reason}): "
                f"add {split}.jsonl there or point dataset.id at a file"
            ) from None
    raise UserError(f"dataset file not found: {path}: check dataset.id (a path, a hub id, or '{GENERATED}')")


def _load_hub(source: str, config: str | None, split: str, revision: str | None) -> "Dataset":
    import datasets
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError

    where = f"'{source}'" + (f" (config {config})" if config else "") + (f" at revision {revision}" if revision else "")
    try:
        return datasets.load_dataset(source, config, split=split, revision=revision)
    except datasets.exceptions.DatasetNotFoundError:
        raise UserError(
            f"dataset {where} not found on {constants.ENDPOINT}: check dataset.id and dataset.revision, "
            "and that HF_TOKEN may read it"
        ) from None
    except (ValueError, FileNotFoundError, HfHubHTTPError) as error:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise UserError(
            f"cannot load split '{split}' of dataset {where} from {constants.ENDPOINT}: {first_line}; "
            "check dataset.config, dataset.split and dataset.revision"
        ) from None


def _check_columns(columns: Iterable[str], needed: Mapping[str, str], where: str) -> None:
    columns = list(columns)
    for key, column in needed.items():
        if column not in columns:
            raise UserError(
                f"{where} has no column '{column}' (its columns: {', '.join(columns) or 'none'}): "
                f"set dataset.{key} to one of them"
            )


def load_rows(
    source: str,
    *,
    config: str | None = None,
    split: str = "train",
    revision: str | None = None,
    question_column: str = "question",
    answer_column: str = "answer",
    num_generated: int = 1000,
    seed: int = 0,
) -> "Dataset":
    """The raw rows of a data set, checked to be non-empty and to have the question and answer columns.

    ``source`` is ``generated`` (``num_generated`` problems; the train split uses ``seed`` itself and other
    splits a seed derived from the split name, so a test split never repeats the training problems by
    construction), a local ``.jsonl``/``.json``/``.parquet`` file (the file is the split), a folder with
    ``{split}.jsonl`` (or ``.json``/``.parquet``, or laid out like a hub data set repository), or a hub
    data set id loaded with ``datasets.load_dataset``, which follows ``HF_ENDPOINT``/``HF_TOKEN``.
    """
    if not isinstance(source, str) or not source.strip():
        raise UserError(f"dataset.id must name a data set (a hub id, a path, or '{GENERATED}'), got {source!r}")
    if source == GENERATED:
        if num_generated <= 0:
            raise UserError(f"dataset.num_generated must be a positive number of problems, got {num_generated}")
        from datasets import Dataset

        split_seed = seed if split == "train" else seed + zlib.crc32(split.encode("utf-8"))
        rows = Dataset.from_list(generate_problems(num_generated, split_seed))
        where = "the generated data set"
    elif _is_local_source(source):
        rows = _load_local(source, config, split)
        where = f"data set {source}"
    else:
        rows = _load_hub(source, config, split, revision)
        where = f"data set '{source}' split '{split}'"
    if len(rows) == 0:
        raise UserError(f"{where} has no rows: point dataset.id/dataset.split at data with rows")
    _check_columns(rows.column_names, {"question_column": question_column, "answer_column": answer_column}, where)
    return rows


# --------------------------------------------------------------------------------------------------------
# Preparing rows for GRPO


@dataclass
class PrepStats:
    """How many rows ``prepare_dataset`` kept and why it dropped the others."""

    kept: int = 0
    dropped_no_answer: int = 0
    dropped_too_long: int = 0
    dropped_no_question: int = 0

    @property
    def total(self) -> int:
        return self.kept + self.dropped_no_answer + self.dropped_too_long + self.dropped_no_question

    def summary(self) -> str:
        """One line for the training log."""
        return (
            f"kept {self.kept} of {self.total} rows ({self.dropped_no_answer} without a numeric '#### ' answer, "
            f"{self.dropped_too_long} over the prompt token limit, {self.dropped_no_question} without a question)"
        )


def _column_names(rows: Any) -> list[str]:
    names = getattr(rows, "column_names", None)
    if names is not None:
        return list(names)
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


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
) -> "tuple[Dataset, PrepStats]":
    """GRPO training rows: ``prompt`` (chat messages) and ``answer`` (the gold number as a string).

    Drops, and counts, rows whose answer has no numeric ``####`` gold answer, rows with an empty question,
    and (with a tokenizer and ``max_prompt_tokens``) rows whose chat-templated prompt is longer than that.
    TRL 1.x no longer truncates prompts, so an over-long prompt would otherwise cost memory on every step.
    """
    from datasets import Dataset

    _check_columns(
        _column_names(rows), {"question_column": question_column, "answer_column": answer_column}, "the data set"
    )
    if max_prompt_tokens is not None and max_prompt_tokens <= 0:
        raise UserError(f"dataset.max_prompt_tokens must be a positive number of tokens, got {max_prompt_tokens}")
    system_text = resolve_system_prompt(system)
    examples = _check_few_shot(few_shot)

    stats = PrepStats()
    prompts: list[list[dict]] = []
    answers: list[str] = []
    for row in rows:
        gold = extract_gold(row.get(answer_column))
        if gold is None or parse_number(gold) is None:
            stats.dropped_no_answer += 1
            continue
        question = row.get(question_column)
        if not isinstance(question, str) or not question.strip():
            stats.dropped_no_question += 1
            continue
        prompts.append(build_prompt(question, system_text, examples))
        answers.append(gold)

    if tokenizer is not None and max_prompt_tokens is not None and prompts:
        lengths = _prompt_lengths(tokenizer, prompts)
        keep = [length <= max_prompt_tokens for length in lengths]
        stats.dropped_too_long = keep.count(False)
        prompts = [p for p, k in zip(prompts, keep) if k]
        answers = [a for a, k in zip(answers, keep) if k]

    stats.kept = len(prompts)
    if not prompts:
        raise UserError(
            f"no usable rows: {stats.summary()}; fix: check dataset.answer_column ('{answer_column}') holds "
            f"GSM8K answers ending '#### <number>', dataset.question_column ('{question_column}'), "
            "and raise dataset.max_prompt_tokens if prompts were too long"
        )
    return Dataset.from_dict({"prompt": prompts, "answer": answers}), stats
