"""The built-in rewards, registered by name: correctness against the task's gold answer, and the format rewards.

Every reward has TRL's custom-reward signature ``fn(completions, **kwargs) -> list[float]``. A completion is
either a plain string or a conversational completion (a list of message dicts); the gold answers arrive as the
``answer`` keyword (one string per completion) and the way to compare them as ``compare_as``, because TRL
passes every data set column as a keyword. Each function's ``__name__`` is its registry name, since TRL logs
``rewards/<__name__>/mean``.

The expected completion shape is::

    <reasoning>
    ...any number of lines...
    </reasoning>
    <answer>
    42
    </answer>

Scales (the values the recipes' weights multiply):

- ``correctness``   2.0 when the answer block equals the gold answer by the task's comparison, else 0.0.
- ``integer``       0.5 when the answer block holds any number (-3, 0.5, 1,000, $18 all count), else 0.0.
- ``strict_format`` 0.5 when the whole completion is exactly the shape above, else 0.0.
- ``soft_format``   0.5 when a reasoning block is followed (after optional whitespace) by an answer block.
- ``xml_count``     0.125 per well-formed tag, minus 0.001 per trailing character, never below 0.0.

These are fixed versions of the widely shared GSM8K GRPO rewards: the format patterns match multi-line
reasoning, a completion without tags has no answer (instead of its whole text being the answer), numbers
may be negative, decimal, comma-grouped or in dollars, ``1,000`` equals ``1000`` and ``18.00`` equals ``18``,
and nothing is printed: these run on every completion of every step.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from reasoner.errors import UserError
from reasoner.tasks.compare import COMPARISONS, comparison
from reasoner.tasks.completions import CLOSE_ANSWER, completion_texts, extract_answer, read_answer
from reasoner.tasks.numeric import parse_number

__all__ = ["REWARDS", "REWARD_RANGES", "RewardFunc", "correctness", "integer", "soft_format", "strict_format",
           "xml_count", "xml_count_score"]

RewardFunc = Callable[..., list[float]]

CORRECTNESS_REWARD = 2.0
NUMBER_REWARD = 0.5
STRICT_FORMAT_REWARD = 0.5
SOFT_FORMAT_REWARD = 0.5
XML_TAG_REWARD = 0.125
XML_TRAILING_PENALTY_PER_CHAR = 0.001

# Text between tags may hold anything except another reasoning/answer tag, so one strict completion has
# exactly one block of each and a second answer block cannot hide inside the first one.
_TAG_FREE = r"(?:(?!</?(?:reasoning|answer)>).)+"

# The whole completion, line breaks included. One trailing newline is optional because the format ends
# with a newline and many tokenizers drop a trailing newline at the end-of-sequence token.
_STRICT_RE = re.compile(
    rf"<reasoning>\n{_TAG_FREE}\n</reasoning>\n<answer>\n{_TAG_FREE}\n</answer>\n?",
    re.DOTALL,
)

# A reasoning block followed, after optional whitespace, by an answer block, anywhere in the completion.
_SOFT_RE = re.compile(r"<reasoning>.*?</reasoning>\s*<answer>.*?</answer>", re.DOTALL)


def _per_completion(name: str, texts: list[str], values: Any, what: str) -> list[Any]:
    if isinstance(values, (str, int, Decimal)) or values is None:
        values = [values] * len(texts)
    if len(values) != len(texts):
        raise ValueError(f"reward '{name}' got {len(texts)} completions but {len(values)} {what}")
    return list(values)


def correctness(completions: Sequence[Any], answer: Sequence[Any] | None = None,
                compare_as: Sequence[str] | str | None = None, read_from: Sequence[str] | str | None = None,
                **kwargs: Any) -> list[float]:
    """2.0 when the answer equals the gold answer by the row's comparison (numbers when none).

    The answer is read where the row's ``read_from`` says: the last answer block (``tags``, the default), the
    last ``\\boxed{}`` (``boxed``) or either (``either``, the default of the math format).

    ``$1,000.00`` matches ``1000`` as numbers, ``\\frac{1}{2}`` matches ``0.5`` with math-verify, ``Paris``
    matches ``paris.`` as exact text, ``(B)`` matches ``B`` as a choice.
    """
    texts = completion_texts(completions)
    if answer is None:
        raise UserError(
            "reward 'correctness' needs the gold answers, but the dataset passed no 'answer' column: "
            "prepare the data with reasoner.data.prepare_dataset, which adds it"
        )
    golds = _per_completion("correctness", texts, answer, "gold answers")
    kinds = _per_completion("correctness", texts, compare_as, "compare_as values")
    for kind in set(kinds) - {None}:
        if kind not in COMPARISONS:
            raise UserError(f"reward 'correctness' got compare_as '{kind}': use one of {', '.join(COMPARISONS)}")
    places = _per_completion("correctness", texts, read_from, "read_from values")
    return [
        CORRECTNESS_REWARD if comparison(kind).equal(read_answer(text, place), None if gold is None else str(gold))
        else 0.0 for text, gold, kind, place in zip(texts, golds, kinds, places)
    ]


def integer(completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """0.5 when the last answer block holds a number of any kind (the name is the public recipe's)."""
    return [NUMBER_REWARD if parse_number(extract_answer(text)) is not None else 0.0
            for text in completion_texts(completions)]


def strict_format(completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """0.5 when the whole completion is exactly the reasoning/answer shape, line breaks included.

    Both blocks may span several lines but must be non-empty and hold no further tags; nothing may come
    before ``<reasoning>``; after ``</answer>`` only one optional newline.
    """
    return [STRICT_FORMAT_REWARD if _STRICT_RE.fullmatch(text) else 0.0 for text in completion_texts(completions)]


def soft_format(completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """0.5 when a ``<reasoning>…</reasoning>`` block is followed by an ``<answer>…</answer>`` block.

    Line breaks are free, whitespace may separate the blocks, and text around them is allowed.
    """
    return [SOFT_FORMAT_REWARD if _SOFT_RE.search(text) else 0.0 for text in completion_texts(completions)]


def xml_count_score(text: str) -> float:
    """Partial credit for the four tags of the format, less a penalty for text after the answer.

    0.125 for each of ``<reasoning>\\n``, ``\\n</reasoning>\\n``, ``\\n<answer>\\n`` and ``\\n</answer>`` that
    occurs exactly once. Trailing text is everything after the last ``</answer>`` less one newline directly
    after it (the format ends with one); without any ``</answer>`` there is no trailing text, so a missing
    tag never turns the whole completion into a penalty. Each trailing character costs 0.001, and the score
    never goes below 0.0, so tags followed by rambling never score worse than no tags at all.
    """
    score = 0.0
    for tag in ("<reasoning>\n", "\n</reasoning>\n", "\n<answer>\n", "\n</answer>"):
        if text.count(tag) == 1:
            score += XML_TAG_REWARD
    close = text.rfind(CLOSE_ANSWER)
    if close >= 0:
        trailing = text[close + len(CLOSE_ANSWER) :]
        if trailing.startswith("\n"):
            trailing = trailing[1:]
        score -= XML_TRAILING_PENALTY_PER_CHAR * len(trailing)
    return round(max(score, 0.0), 6)


def xml_count(completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """Per completion, :func:`xml_count_score`: between 0.0 and 0.5."""
    return [xml_count_score(text) for text in completion_texts(completions)]


REWARDS: dict[str, RewardFunc] = {
    fn.__name__: fn for fn in (xml_count, soft_format, strict_format, integer, correctness)
}

# The range of each reward, for tests and for reading logged means.
REWARD_RANGES: dict[str, tuple[float, float]] = {
    "correctness": (0.0, CORRECTNESS_REWARD),
    "integer": (0.0, NUMBER_REWARD),
    "strict_format": (0.0, STRICT_FORMAT_REWARD),
    "soft_format": (0.0, SOFT_FORMAT_REWARD),
    "xml_count": (0.0, 4 * XML_TAG_REWARD),
}
