"""Reward functions for GRPO on GSM8K-style problems, registered by name.

Every reward has TRL's custom-reward signature ``fn(completions, **kwargs) -> list[float]``. A completion is
either a plain string or a conversational completion (a list of message dicts); the gold answers arrive as the
``answer`` keyword (one string per completion), because TRL passes every dataset column as a keyword. Each
function's ``__name__`` is its registry name, since TRL logs ``rewards/<__name__>/mean``.

The expected completion shape is::

    <reasoning>
    ...any number of lines...
    </reasoning>
    <answer>
    42
    </answer>

Scales (the values the recipes' weights multiply):

- ``correctness``   2.0 when the answer block holds the gold number (compared as numbers), else 0.0.
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
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from reasoner.errors import UserError

__all__ = [
    "REWARDS",
    "RewardFunc",
    "completion_text",
    "correctness",
    "extract_answer",
    "get_reward_funcs",
    "integer",
    "last_number",
    "numbers_equal",
    "parse_number",
    "soft_format",
    "strict_format",
    "xml_count",
]

RewardFunc = Callable[..., list[float]]

CORRECTNESS_REWARD = 2.0
NUMBER_REWARD = 0.5
STRICT_FORMAT_REWARD = 0.5
SOFT_FORMAT_REWARD = 0.5
XML_TAG_REWARD = 0.125
XML_TRAILING_PENALTY_PER_CHAR = 0.001

_OPEN_ANSWER = "<answer>"
_CLOSE_ANSWER = "</answer>"

# The digits of a number, ASCII only (the patterns use re.ASCII): plain (1000, 007) or grouped by commas in
# threes (1,000 / 12,345,678), with an optional fraction; or a bare fraction (.5). "1,00" and "1000,000"
# are not numbers: a comma that does not separate thousands is more likely a list ("3,4") or a decimal
# comma than a thousands separator.
_DIGITS = r"(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)"

# A whole answer: optional sign and dollar sign in either order (-$5, $-5), the digits, an optional percent
# sign (GSM8K gold answers to percentage questions are the bare number, so "50%" is 50), and an optional
# sentence-ending period ("18." is 18).
_NUMBER_RE = re.compile(
    rf"(?P<sign1>[-+]?)\$?(?P<sign2>[-+]?)(?P<digits>{_DIGITS})%?\.?", re.ASCII
)

# A number inside running text. It must not continue a word or another number on the left ("x2" has none,
# "3-4" ends with 4, not -4, "1.5" is not read as ".5") and must not be a piece cut from a longer number on
# the right ("1,00" and "1,0000" give no number rather than "1"). Units may follow: "18kg" gives 18.
_NUMBER_IN_TEXT_RE = re.compile(
    rf"(?<![\w.,])(?:[-+]?\$?|\$[-+]?){_DIGITS}%?(?![\d_]|[.,]\d)", re.ASCII
)

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


def extract_answer(text: str) -> str | None:
    """Return the text inside the last complete ``<answer>…</answer>`` block, stripped.

    None when there is no complete block: an unclosed ``<answer>`` (a completion cut at the length limit)
    is not an answer, and neither is the whole text of a completion without tags.
    """
    end = text.rfind(_CLOSE_ANSWER)
    if end < 0:
        return None
    start = text.rfind(_OPEN_ANSWER, 0, end)
    if start < 0:
        return None
    return text[start + len(_OPEN_ANSWER) : end].strip()


def parse_number(text: str | None) -> Decimal | None:
    """Read a whole string as one number, or return None.

    Accepted: ``-3``, ``+4``, ``0.5``, ``.5``, ``1,000``, ``$18``, ``$1,000.00``, ``-$5``, ``18.00``,
    ``50%`` (as 50) and a sentence-ending period (``18.``), with surrounding whitespace. Rejected: words,
    empty text, numbers with units or other text around them, badly grouped commas (``1,00``), two signs,
    exponents, ``inf``/``nan``. The value is exact (Decimal), so ``18.00`` equals ``18``.
    """
    if text is None:
        return None
    match = _NUMBER_RE.fullmatch(text.strip())
    if match is None:
        return None
    sign1, sign2 = match.group("sign1"), match.group("sign2")
    if sign1 and sign2:
        return None
    try:
        return Decimal((sign1 or sign2) + match.group("digits").replace(",", ""))
    except InvalidOperation:  # pragma: no cover - the pattern only admits valid decimals
        return None


def numbers_equal(a: str | Decimal | int | None, b: str | Decimal | int | None) -> bool:
    """True when both values are numbers (by ``parse_number``) with the same value: ``1,000 == 1000.0``."""
    left = a if isinstance(a, Decimal) else parse_number(None if a is None else str(a))
    right = b if isinstance(b, Decimal) else parse_number(None if b is None else str(b))
    if left is None or right is None:
        return False
    return left == right


def last_number(text: str) -> str | None:
    """Return the last number written anywhere in the text, as written (``parse_number`` accepts it).

    Evaluation uses it for "lenient" accuracy: the answer a model gave even when it ignored the format.
    """
    last = None
    for last in _NUMBER_IN_TEXT_RE.finditer(text):
        pass
    return None if last is None else last.group(0)


def completion_text(completion: Any) -> str:
    """The text of one completion: a plain string, or the last assistant message of a conversation.

    Message content may be a string or a list of content parts (``{"type": "text", "text": ...}``).
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return _content_text(completion.get("content"))
    if isinstance(completion, Sequence):
        messages = [m for m in completion if isinstance(m, dict)]
        assistant = [m for m in messages if m.get("role", "assistant") == "assistant"]
        chosen = assistant or messages
        return _content_text(chosen[-1].get("content")) if chosen else ""
    return ""


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text") or "" if isinstance(part, dict) else str(part) for part in content
        )
    return str(content)


def _texts(completions: Iterable[Any]) -> list[str]:
    return [completion_text(c) for c in completions]


def _gold_answers(name: str, texts: list[str], answer: Sequence[Any] | None) -> list[Any]:
    if answer is None:
        raise UserError(
            f"reward '{name}' needs the gold answers, but the dataset passed no 'answer' column: "
            "prepare the data with reasoner.data.prepare_dataset, which adds it"
        )
    if isinstance(answer, (str, int, Decimal)):
        answer = [answer] * len(texts)
    if len(answer) != len(texts):
        raise ValueError(f"reward '{name}' got {len(texts)} completions but {len(answer)} gold answers")
    return list(answer)


def correctness(completions: Sequence[Any], answer: Sequence[Any] | None = None, **kwargs: Any) -> list[float]:
    """2.0 when the last answer block holds the gold answer's number (``$1,000.00`` matches ``1000``)."""
    texts = _texts(completions)
    golds = _gold_answers("correctness", texts, answer)
    return [
        CORRECTNESS_REWARD if numbers_equal(extract_answer(text), None if gold is None else str(gold)) else 0.0
        for text, gold in zip(texts, golds)
    ]


def integer(completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """0.5 when the last answer block holds a number of any kind (the name is the public recipe's)."""
    return [NUMBER_REWARD if parse_number(extract_answer(text)) is not None else 0.0 for text in _texts(completions)]


def strict_format(completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """0.5 when the whole completion is exactly the reasoning/answer shape, line breaks included.

    Both blocks may span several lines but must be non-empty and hold no further tags; nothing may come
    before ``<reasoning>``; after ``</answer>`` only one optional newline.
    """
    return [STRICT_FORMAT_REWARD if _STRICT_RE.fullmatch(text) else 0.0 for text in _texts(completions)]


def soft_format(completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """0.5 when a ``<reasoning>…</reasoning>`` block is followed by an ``<answer>…</answer>`` block.

    Line breaks are free, whitespace may separate the blocks, and text around them is allowed.
    """
    return [SOFT_FORMAT_REWARD if _SOFT_RE.search(text) else 0.0 for text in _texts(completions)]


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
    close = text.rfind(_CLOSE_ANSWER)
    if close >= 0:
        trailing = text[close + len(_CLOSE_ANSWER) :]
        if trailing.startswith("\n"):
            trailing = trailing[1:]
        score -= XML_TRAILING_PENALTY_PER_CHAR * len(trailing)
    return round(max(score, 0.0), 6)


def xml_count(completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """Per completion, :func:`xml_count_score`: between 0.0 and 0.5."""
    return [xml_count_score(text) for text in _texts(completions)]


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


def get_reward_funcs(names: Iterable[str]) -> list[RewardFunc]:
    """The registered reward functions for the given names, in order (a recipe's ``rewards`` mapping works).

    An unknown name is a recipe mistake: the error lists the known names.
    """
    names = list(names)
    if not names:
        raise UserError(f"no rewards named: list at least one under 'rewards' (known: {', '.join(sorted(REWARDS))})")
    funcs = []
    for name in names:
        if name not in REWARDS:
            raise UserError(f"unknown reward '{name}': use one of {', '.join(sorted(REWARDS))}")
        funcs.append(REWARDS[name])
    return funcs
