"""Numbers as people and models write them: ``-3``, ``0.5``, ``1,000``, ``$18``, ``18.00``, ``50%``.

Both the rewards and evaluation read numbers through these three functions, so "correct" means the same thing
while training and while measuring. Values are exact (``Decimal``): ``18.00`` equals ``18``.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

__all__ = ["last_number", "numbers_equal", "parse_number"]

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
