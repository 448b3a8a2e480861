"""LaTeX and expression answers compared by value with ``math-verify``, as open-r1 and TRL do.

``\\frac{1}{2}`` equals ``0.5`` and ``2\\sqrt{2}`` equals ``\\sqrt{8}``: the two sides are parsed into sympy
expressions and compared symbolically, not as strings. An answer written without ``$`` delimiters (as one
inside ``<answer>`` tags usually is) is read as LaTeX first, then as a plain expression. ``math-verify`` is a
dependency of the package; it is imported on first use because it brings sympy along (~0.4 s).
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from typing import Any

from reasoner.errors import UserError

__all__ = ["last_boxed", "math_answer_anywhere", "math_equal", "parse_math", "require_math_verify"]

_INSTALL_HINT = "pip install math-verify"


def require_math_verify() -> None:
    """Refuse a math task up front when the library is missing, instead of failing on the first batch."""
    if importlib.util.find_spec("math_verify") is None:
        raise UserError(f"answer.format 'math' compares answers with the math-verify library, which is not installed: {_INSTALL_HINT}")


def _timeouts() -> dict[str, Any]:
    """math-verify times out through signal.alarm, which only works on the main thread: none elsewhere."""
    if threading.current_thread() is threading.main_thread():
        return {}
    logging.getLogger("math_verify").setLevel(logging.ERROR)  # its "timeout disabled" warnings are expected here
    return {"parsing_timeout": None}


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) in the text, braces matched; None without one."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    brace = text.find("{", start)
    if brace < 0:
        return None
    depth = 0
    for index in range(brace, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return text[brace + 1 : index].strip()
    return None


def parse_math(text: str | None) -> list:
    """The parsed forms of one answer (empty when it cannot be read): LaTeX first, then a plain expression."""
    if text is None or not str(text).strip():
        return []
    from math_verify import parse

    text = str(text).strip()
    options = _timeouts()
    if "$" in text or "\\boxed" in text or "\\(" in text or "\\[" in text:
        return parse(text, **options)
    return parse(f"${text}$", **options) or parse(text, **options)


def math_equal(predicted: str | None, gold: str | None) -> bool:
    """True when both sides parse and math-verify finds them equal (the gold is the reference side)."""
    gold_parsed = parse_math(gold)
    predicted_parsed = parse_math(predicted)
    if not gold_parsed or not predicted_parsed:
        return False
    from math_verify import verify

    options = {"timeout_seconds": None} if _timeouts() else {}
    return bool(verify(gold_parsed, predicted_parsed, **options))


def math_answer_anywhere(text: str) -> str | None:
    """The answer a completion gives outside the tags: its last ``\\boxed{}``, else what math-verify finds last."""
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    if not text.strip():
        return None
    from math_verify import parse

    parsed = parse(text, **_timeouts())  # [sympy value, the text it was read from] or []
    return str(parsed[-1]) if parsed else None
