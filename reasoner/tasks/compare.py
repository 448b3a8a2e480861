"""How a model's answer is compared with the gold answer: ``number``, ``math``, ``exact`` or ``choice``.

A comparison knows three things: whether a gold answer is usable at all (a row whose gold cannot be compared
is dropped and counted), whether a predicted answer equals the gold, and where to find an answer in a
completion that ignored the ``<answer>`` tags (for *lenient* accuracy in evaluation). Rewards and evaluation
both go through these objects, and each prepared row names its comparison in the ``compare_as`` column, so a
mixture of data sets with different answer kinds is scored row by row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from reasoner.tasks import latex
from reasoner.tasks.choice import LETTERS, committed_letter, read_choice_key, stated_letter
from reasoner.tasks.numeric import last_number, numbers_equal, parse_number

__all__ = ["COMPARISONS", "Comparison", "comparison", "normalize_text", "read_choice"]

CHOICE_LETTERS = LETTERS
_ANSWER_PREFIX = re.compile(r"^(?:the\s+)?(?:final\s+)?answer\s*(?:is)?\s*:?\s*", re.IGNORECASE)


def normalize_text(value: Any) -> str:
    """A string answer in a canonical form: trimmed, case-folded, inner whitespace collapsed, outer quotes and a
    final period removed (``" Paris."`` equals ``"paris"``)."""
    text = " ".join(str(value).split()).casefold()
    text = text.strip("\"'`")
    return text[:-1].rstrip() if text.endswith(".") else text


def read_choice(value: Any) -> str | None:
    """One letter A-Z from a gold key: ``B``, ``(b)``, ``B) 12 apples``, ``Answer: B``, or a 0-based index 1."""
    return read_choice_key(value, index_from=0)


def _last_line(text: str) -> str | None:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return _ANSWER_PREFIX.sub("", lines[-1]) if lines else None


def _exact_equal(predicted: str | None, gold: str | None) -> bool:
    return predicted is not None and gold is not None and normalize_text(gold) != "" and (
        normalize_text(predicted) == normalize_text(gold))


def _choice_equal(predicted: str | None, gold: str | None) -> bool:
    expected = read_choice(gold)
    return expected is not None and committed_letter(predicted) == expected


@dataclass(frozen=True)
class Comparison:
    """One way of comparing answers. ``lenient`` finds an answer anywhere in a completion (or None)."""

    name: str
    describe: str
    gold_ok: Callable[[str], bool]
    equal: Callable[[str | None, str | None], bool]
    lenient: Callable[[str], str | None]


COMPARISONS: dict[str, Comparison] = {
    comparison.name: comparison
    for comparison in (
        Comparison("number", "a number (1,000 equals 1000.0 and $1000)", lambda gold: parse_number(gold) is not None,
                   numbers_equal, last_number),
        Comparison("math", "a LaTeX or plain expression math-verify can read (\\frac{1}{2} equals 0.5)",
                   lambda gold: bool(latex.parse_math(gold)), latex.math_equal, latex.math_answer_anywhere),
        Comparison("exact", "a non-empty string (compared trimmed, case-folded, whitespace collapsed)",
                   lambda gold: normalize_text(gold) != "", _exact_equal, _last_line),
        Comparison("choice", "one option letter A-Z", lambda gold: read_choice(gold) is not None, _choice_equal,
                   stated_letter),
    )
}


def comparison(name: str | None) -> Comparison:
    """The comparison of that name; None (rows prepared without a ``compare_as`` column) means ``number``."""
    return COMPARISONS[name or "number"]
