"""Multiple choice: option letters, gold keys, the options rendered into a prompt, and the letter a model commits to.

A grader that pays a pattern is a grader the model learns to exploit under RL, so ``committed_letter`` pays one
letter only when the text commits to exactly that letter: ``B``, ``(B)``, ``B)``, ``**B**``, ``Option B``,
``\\boxed{B}``, ``B. the text`` and ``The answer is (B)`` all commit to B; ``a whale`` (a word that starts with a
letter), ``A or B`` (a hedge) and ``A is wrong; the answer is C`` (two letters named) commit to nothing.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from collections.abc import Mapping, Sequence
from typing import Any

from reasoner.errors import UserError

__all__ = ["LETTERS", "ChoiceLayout", "check_templates", "DEFAULT_CHOICES_TEMPLATE", "DEFAULT_CHOICE_LINE", "committed_letter", "option_letters",
           "read_choice_key", "render_choices", "row_options", "stated_letter"]

LETTERS = string.ascii_uppercase  # up to 26 options: A-J (MMLU-Pro's ten) and beyond
DEFAULT_CHOICES_TEMPLATE = "{question}\n\n{choices}"
DEFAULT_CHOICE_LINE = "({label}) {text}"

_MARKUP = re.compile(r"\*\*|__|`|\$")
_BOXED = re.compile(r"\\(?:boxed|fbox|text|textbf|mathrm)\s*\{\s*([^{}]*?)\s*\}")
_PREFIX = re.compile(
    r"^(?:so,?\s+|thus,?\s+|therefore,?\s+)?(?:the\s+|my\s+)?(?:final\s+|correct\s+|best\s+|right\s+)?"
    r"(?:answer|option|choice)(?:\s+is)?\s*[:\-]?\s*(?:option\s+|choice\s+)?", re.IGNORECASE)
_ALONE = re.compile(r"\(?([A-Za-z])\)?[.:]?")
_LEADING = re.compile(r"(?:\(([A-Za-z])\)|([A-Z])[.):])\s+(\S.*)", re.DOTALL)
# A reference to an option letter inside running text: "(C)", "C)", "option C", "answer is C", a capital
# letter standing alone as a word ("or C", "C is wrong"). Lower-case words ("a whale") are not references.
_REFERENCE = re.compile(r"\(([A-Za-z])\)|(?<![\w'’])([A-Z])(?![\w'’])")
# Words after "A" that make it a letter being talked about ("A is wrong", "A or B"), not an article.
_LETTER_VERBS = {"is", "was", "and", "or", "seems", "looks", "would", "could", "can", "might", "must", "should",
                 "isn't", "wasn't", "because", "fits", "matches", "works", "and/or"}
_ANYWHERE = re.compile(r"\(([A-Z])\)|(?<![\w])([A-Z])\)|\banswer\b\s*(?:is)?\s*:?\s*\(?([A-Z])\b", re.IGNORECASE)
# "answer is C", "option (c)": a lower-case letter counts only in parentheses ("the answer is a whale" is not A).
_STATED = re.compile(r"\b(?i:answer|option|choice)\b\s*(?i:is\s*)?[:\-]?\s*(?:\(([A-Za-z])\)|([A-Z])\)?)(?![\w'’])")


def option_letters(count: int) -> str:
    """The labels of ``count`` options (A, B, ...); more than 26 options is refused."""
    if count > len(LETTERS):
        raise UserError(f"a question has {count} options, more than the {len(LETTERS)} letters A-Z can label: "
                        "drop options or split the question")
    return LETTERS[:count]


def _clean(text: str) -> str:
    previous = None
    while previous != text:
        previous, text = text, _BOXED.sub(r"\1", text)
    return " ".join(_MARKUP.sub("", text).split())


def committed_letter(text: str | None) -> str | None:
    """The one option letter ``text`` (an answer block, or a final statement) commits to, else None."""
    if text is None:
        return None
    cleaned = _clean(str(text)).strip().rstrip(".!")
    body = _PREFIX.sub("", cleaned, count=1).strip()
    alone = _ALONE.fullmatch(body)
    if alone:
        return alone.group(1).upper()
    leading = _LEADING.fullmatch(body)
    if leading:
        letter = (leading.group(1) or leading.group(2)).upper()
        others = {m.upper() for m in _references(leading.group(3))} - {letter}
        return None if others else letter
    letters = set(_references(cleaned))
    stated = [(match.group(1) or match.group(2)).upper() for match in _STATED.finditer(cleaned)]
    if stated and {letter.upper() for letter in letters} | set(stated) == {stated[-1]}:
        return stated[-1]
    return None


def _references(text: str) -> list[str]:
    return [(match.group(1) or match.group(2)).upper() for match in _REFERENCE.finditer(text)
            if not _is_pronoun(text, match)]


def _is_pronoun(text: str, match: re.Match[str]) -> bool:
    """"I" as a pronoun ("I think", "I'm") and "A" as an article ("A whale") are words, not option letters."""
    word = match.group(2)
    if word not in ("I", "A"):
        return False
    following = re.match(r"\s+([a-z][\w'’]*)", text[match.end():])
    return bool(following) and following.group(1) not in _LETTER_VERBS


def stated_letter(text: str) -> str | None:
    """The letter a whole completion ends on (for lenient scoring): its last final statement, when it commits."""
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    if lines:
        last = committed_letter(lines[-1])
        if last is not None:
            return last
    letter = None
    for match in _ANYWHERE.finditer(_clean(str(text))):
        letter = next(group for group in match.groups() if group)
    return letter.upper() if letter else None


def read_choice_key(value: Any, *, index_from: int = 0, labels: Sequence[str] | None = None,
                    count: int | None = None) -> str | None:
    """A gold key as a letter: a letter (``B``, ``(b)``), an index counted from ``index_from`` (an int or digits),
    or one of the row's own ``labels`` (ARC's ``{label, text}`` with labels ``1``-``4``). None when unreadable
    or beyond the ``count`` options the row has."""
    if value is None or isinstance(value, (bool, float, list, dict)):
        return None
    text = str(value).strip()
    if labels is not None and text in [str(label).strip() for label in labels]:
        position = [str(label).strip() for label in labels].index(text)
        letter = LETTERS[position] if position < len(LETTERS) else None
    elif isinstance(value, int) or text.isdigit():
        position = int(text) - index_from
        letter = LETTERS[position] if 0 <= position < len(LETTERS) else None
    else:
        letter = committed_letter(text)
    if letter is None or (count is not None and LETTERS.index(letter) >= count):
        return None
    return letter


def row_options(row: Mapping[str, Any], *, column: str | None, columns: Sequence[str] | None
                ) -> tuple[list[str], list[str] | None] | None:
    """A row's option texts and its own labels (a ``{label, text}`` column), or None when the row has none."""
    if columns:
        texts = [row.get(name) for name in columns]
        texts = [str(text) for text in texts if text is not None and str(text).strip()]
        return (texts, None) if texts else None
    value = row.get(column) if column else None
    if isinstance(value, Mapping):
        texts, labels = value.get("text"), value.get("label")
        if not isinstance(texts, Sequence) or isinstance(texts, str):
            return None
        labels = list(labels) if isinstance(labels, Sequence) and not isinstance(labels, str) else None
        return [str(text) for text in texts], labels if labels and len(labels) == len(texts) else None
    if isinstance(value, Sequence) and not isinstance(value, str):
        return ([str(text) for text in value], None) if value else None
    return None


def render_choices(question: str, texts: Sequence[str], *, template: str = DEFAULT_CHOICES_TEMPLATE,
                   line: str = DEFAULT_CHOICE_LINE) -> str:
    """The question with its options, one ``line`` per option (``{label}``, ``{text}``), placed by ``template``
    (``{question}``, ``{choices}``)."""
    labels = option_letters(len(texts))
    choices = "\n".join(line.format(label=label, text=text) for label, text in zip(labels, texts))
    return template.format(question=question, choices=choices)


def check_templates(template: Any, line: Any, where: str) -> None:
    """Refuse templates that would fail on the first row, in one line naming the key."""
    for key, value, fields in ((f"{where}.choices_template", template, {"question", "choices"}),
                               (f"{where}.choice_line", line, {"label", "text"})):
        if value is None:
            continue
        if not isinstance(value, str):
            raise UserError(f"{key} must be a string, got {value!r}")
        try:
            used = {name for _, name, _, _ in string.Formatter().parse(value) if name}
        except ValueError as error:
            raise UserError(f"{key} {value!r} is not a valid template ({error}): write {{}} fields, {{{{ }}}} for braces") from None
        unknown = used - fields
        if unknown:
            raise UserError(f"{key} uses {{{sorted(unknown)[0]}}}: only {', '.join('{' + f + '}' for f in sorted(fields))} exist")


@dataclass(frozen=True)
class ChoiceLayout:
    """Where a data set keeps a question's options (a list or ``{label, text}`` column, or one column per option)
    and how they are written into the prompt."""

    column: str | None = None
    columns: tuple[str, ...] = ()
    template: str = DEFAULT_CHOICES_TEMPLATE
    line: str = DEFAULT_CHOICE_LINE

    def options(self, row: Mapping[str, Any]) -> tuple[list[str], list[str] | None] | None:
        return row_options(row, column=self.column, columns=self.columns)

    def render(self, question: str, texts: Sequence[str]) -> str:
        return render_choices(question, texts, template=self.template, line=self.line)

    @property
    def needed(self) -> list[str]:
        """The columns the layout reads."""
        return [self.column] if self.column else list(self.columns)
