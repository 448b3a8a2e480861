"""Prompts: the system message, worked examples as earlier turns, then the question.

The default system prompt asks for exactly the shape the format rewards score (see ``reasoner.rewards``). A
recipe may replace it (``prompt.system``), and a data set may carry its own per row (``dataset.system_column``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reasoner.errors import UserError

__all__ = ["DEFAULT_SYSTEM", "SYSTEM_PROMPT", "build_prompt", "check_few_shot", "resolve_system_prompt"]

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


def resolve_system_prompt(system: str | None) -> str:
    """``default`` (or None) means ``SYSTEM_PROMPT``; any other string is the system prompt, verbatim."""
    if system is None or system == DEFAULT_SYSTEM:
        return SYSTEM_PROMPT
    if not isinstance(system, str):
        raise UserError(f"prompt.system must be a string or 'default', not {type(system).__name__}")
    return system


def check_few_shot(few_shot: Sequence[Mapping[str, Any]] | None) -> list[Mapping[str, Any]]:
    """The worked examples, each checked to be a mapping with ``question`` and ``answer`` strings."""
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
    for example in check_few_shot(few_shot):
        messages.append({"role": "user", "content": example["question"]})
        messages.append({"role": "assistant", "content": example["answer"]})
    messages.append({"role": "user", "content": question})
    return messages
