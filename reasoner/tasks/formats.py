"""Answer formats: how a data set's gold answer is read, and which comparison scores it.

A recipe names one under ``answer.format`` (per data set in a mixture, too):

- ``gsm8k``  the number after the last ``####`` of a worked solution (GSM8K's own layout); compared as numbers.
- ``number`` a column that holds just a number (``42``, ``"1,000"``, ``0.5``); compared as numbers.
- ``math``   LaTeX or an expression (``\\frac{1}{2}``); a worked solution gives its last ``\\boxed{}`` (one
             without a boxed answer has none); compared with math-verify.
- ``exact``  a string, compared trimmed, case-folded, with whitespace collapsed.
- ``choice`` an option letter A-Z (``"B"``, ``"(b)"``), or an index counted from ``answer.index_from`` (0 or 1),
             or one of the row's own option labels; compared as letters (``reasoner.tasks.choice``).
- ``regex``  ``answer.pattern`` picks the gold out of the column (its last match; the group named ``answer``,
             else group 1), compared as ``answer.compare`` says (``exact`` unless set).

``read_gold`` turns a raw column value into the gold string, or None when the row has no usable answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any, Mapping

from reasoner.errors import UserError
from reasoner.tasks.choice import read_choice_key
from reasoner.tasks.compare import COMPARISONS, Comparison
from reasoner.tasks.latex import last_boxed, require_math_verify

__all__ = ["DEFAULT_FORMAT", "FORMATS", "READ_FROM", "AnswerFormat", "AnswerSpec", "answer_format", "extract_gold"]

DEFAULT_FORMAT = "gsm8k"
GOLD_MARKER = "####"
# Where a completion's answer is read: the answer tags, the last \boxed{}, or either (tags first).
READ_FROM = ("tags", "boxed", "either")
FORMATS = ("gsm8k", "number", "math", "exact", "choice", "regex")
_COMPARED_AS = {"gsm8k": "number", "number": "number", "math": "math", "exact": "exact", "choice": "choice"}
# What a usable gold answer looks like, for the counts and the fix in "no usable rows" messages.
_EXPECTS = {
    "gsm8k": ("a numeric '#### ' answer", "GSM8K answers ending '#### <number>'"),
    "number": ("a numeric answer", "plain numbers"),
    "math": ("a LaTeX answer math-verify can read", "LaTeX answers or worked solutions with a \\boxed{} answer"),
    "exact": ("a non-empty answer", "non-empty answer strings"),
    "choice": ("a choice key", "letters A-Z, indexes (answer.index_from says 0- or 1-based) or option labels"),
    "regex": ("an answer the pattern matches", "text the answer.pattern matches"),
}


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


def _read_number(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f") if value == value and abs(value) != float("inf") else None
    return str(value).strip() or None


_PLAIN_WORD = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z]{3,}")


def _read_math(value: Any) -> str | None:
    """The last ``\\boxed{}`` of a worked solution, or the whole value when it is just an answer.

    A solution without a boxed answer (prose: inline ``$...$`` math or several plain words) has no gold answer.
    """
    if value is None:
        return None
    text = str(value).strip()
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    if "$" in text or len(_PLAIN_WORD.findall(text)) >= 4:
        return None
    return text or None


def _read_text(value: Any) -> str | None:
    if value is None or isinstance(value, (list, dict)):
        return None
    return str(value).strip() or None


def _reader(name: str, pattern: re.Pattern[str] | None, index_from: int = 0):
    if name == "regex":
        def read_regex(value: Any) -> str | None:
            matches = list(pattern.finditer(str(value))) if value is not None else []
            if not matches:
                return None
            last = matches[-1]
            found = last.group("answer") if "answer" in pattern.groupindex else last.group(1)
            return found.strip() if found and found.strip() else None

        return read_regex
    if name == "choice":
        return lambda value: read_choice_key(value, index_from=index_from)
    return {"gsm8k": extract_gold, "number": _read_number, "math": _read_math, "exact": _read_text}[name]


@dataclass(frozen=True)
class AnswerFormat:
    """A named way to read gold answers, and the comparison that scores them."""

    name: str
    comparison: Comparison
    pattern: str | None = None
    index_from: int = 0
    read_from: str = "tags"

    def read_gold(self, value: Any) -> str | None:
        """The gold answer in a column value, or None when the row has no answer this format can compare."""
        compiled = re.compile(self.pattern) if self.pattern else None
        gold = _reader(self.name, compiled, self.index_from)(value)
        return gold if gold is not None and self.comparison.gold_ok(gold) else None

    def read_choice_gold(self, value: Any, labels: Any, count: int) -> str | None:
        """A multiple-choice row's gold letter, read against its own ``count`` options and their labels."""
        return read_choice_key(value, index_from=self.index_from, labels=labels, count=count)

    @property
    def missing(self) -> str:
        """What a dropped row lacked, e.g. "a numeric '#### ' answer"."""
        return _EXPECTS[self.name][0]

    @property
    def expects(self) -> str:
        """What the answer column must hold, for the fix in an error message."""
        return _EXPECTS[self.name][1]


@dataclass(frozen=True)
class AnswerSpec:
    """How gold answers are read and compared: a recipe's ``answer`` section, or one ``dataset.mix`` entry's.

    Each field's type, default and one-line doc are the recipe key's definition (reasoner.recipe.sections reads
    them for validation and ``reasoner train --help``); the values are judged together by ``answer_format``.
    """

    format: str = field(default=DEFAULT_FORMAT, metadata={"doc": "how gold answers are read and compared",
                                                          "choices": FORMATS})
    pattern: str | None = field(default=None, metadata={
        "doc": "regex whose first group is the answer (answer.format regex)"})
    compare: str | None = field(default=None, metadata={
        "doc": "how two answers are compared, when not the format's own way"})
    index_from: int | None = field(default=None, metadata={
        "doc": "multiple choice: a numeric gold key counts options from 0 or 1"})
    read_from: str | None = field(default=None, metadata={
        "doc": "where a completion's answer is read: tags, boxed, or either"})

    @classmethod
    def of(cls, spec: "str | Mapping[str, Any] | AnswerSpec | None") -> "AnswerSpec":
        """A spec from a format name, a mapping (a mix entry's ``answer``, evaluation's flags) or a spec; keys it
        does not know are left out here (a mix entry's are refused by reasoner.tasks.spec)."""
        if isinstance(spec, AnswerSpec):
            return spec
        given = {"format": spec} if isinstance(spec, str) or spec is None else dict(spec)
        return cls(**{f.name: given.get(f.name) for f in fields(cls)})

    @property
    def format_name(self) -> str:
        """The format's name, ``gsm8k`` when none is set."""
        return self.format or DEFAULT_FORMAT


def answer_format(spec: "str | Mapping[str, Any] | AnswerSpec | None" = None) -> AnswerFormat:
    """The format a recipe's ``answer`` section (or just a format name) describes; UserError naming the fix.

    ``None`` and ``{}`` mean ``gsm8k``, so recipes written before answer formats existed read as they did.
    """
    spec = AnswerSpec.of(spec)
    name = spec.format_name
    if name not in FORMATS:
        raise UserError(f"unknown answer.format '{name}': use one of {', '.join(FORMATS)}")
    pattern, compare = spec.pattern, spec.compare
    index_from = spec.index_from
    if index_from is not None and (name != "choice" or index_from not in (0, 1) or isinstance(index_from, bool)):
        raise UserError(f"answer.index_from is {index_from!r}: it belongs to answer.format 'choice' and is 0 or 1 "
                        "(whether the gold index counts options from 0 or from 1)")
    read_from = spec.read_from or ("either" if name == "math" else "tags")
    if read_from not in READ_FROM:
        raise UserError(f"answer.read_from is {read_from!r}: use one of {', '.join(READ_FROM)}")
    if name == "regex":
        compare = compare or "exact"
        _check_pattern(pattern)
    elif pattern is not None or compare is not None:
        raise UserError(f"answer.pattern and answer.compare belong to answer.format 'regex', not '{name}': remove them")
    compare = compare or _COMPARED_AS[name]
    if compare not in COMPARISONS:
        raise UserError(f"unknown answer.compare '{compare}': use one of {', '.join(COMPARISONS)}")
    if compare == "math":
        require_math_verify()
    return AnswerFormat(name, COMPARISONS[compare], pattern, int(index_from or 0), read_from)


def _check_pattern(pattern: Any) -> None:
    if not isinstance(pattern, str) or not pattern:
        raise UserError("answer.format 'regex' needs answer.pattern, a regular expression with a group around the answer")
    try:
        compiled = re.compile(pattern)
    except re.error as error:
        raise UserError(f"answer.pattern {pattern!r} is not a valid regular expression ({error}): fix it") from None
    if compiled.groups == 0:
        raise UserError(f"answer.pattern {pattern!r} has no group: put ( ) or (?P<answer> ) around the answer")
