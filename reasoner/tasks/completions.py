"""What a model answered: the text of a completion and the answer inside its ``<answer>`` tags.

Completions reach rewards as plain strings or as conversations (lists of message dicts whose content may be
a string or a list of content parts); every scorer reads them through ``completion_text``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["completion_text", "completion_texts", "extract_answer", "read_answer"]

OPEN_ANSWER = "<answer>"
CLOSE_ANSWER = "</answer>"


def extract_answer(text: str) -> str | None:
    """Return the text inside the last complete ``<answer>…</answer>`` block, stripped.

    None when there is no complete block: an unclosed ``<answer>`` (a completion cut at the length limit)
    is not an answer, and neither is the whole text of a completion without tags.
    """
    end = text.rfind(CLOSE_ANSWER)
    if end < 0:
        return None
    start = text.rfind(OPEN_ANSWER, 0, end)
    if start < 0:
        return None
    return text[start + len(OPEN_ANSWER) : end].strip()


def read_answer(text: str, read_from: str | None = "tags") -> str | None:
    """The answer of a completion where the task says it is written: ``tags`` (the last ``<answer>`` block),
    ``boxed`` (the last ``\\boxed{}``, as R1-style models write it) or ``either`` (the tags, else the box)."""
    from reasoner.tasks.latex import last_boxed

    if read_from == "boxed":
        return last_boxed(text)
    tagged = extract_answer(text)
    if read_from == "either" and tagged is None:
        return last_boxed(text)
    return tagged


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


def completion_texts(completions: Iterable[Any]) -> list[str]:
    """``completion_text`` of each completion of a batch, in order."""
    return [completion_text(c) for c in completions]


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
