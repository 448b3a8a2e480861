"""Rewards of the word-puzzle example, loaded by file path from its recipe (``rewards.py:one_word_answer``).

Any function with TRL's reward signature works: it receives the completions and every data set column as
keywords (``answer`` holds the gold answer) and returns one float per completion.
"""

from __future__ import annotations

from difflib import SequenceMatcher

from reasoner.rewards import completion_text, extract_answer


def one_word_answer(completions, **kwargs):
    """0.5 when the answer block is one word or number (no spaces), the shape of every solution here."""
    scores = []
    for completion in completions:
        answer = extract_answer(completion_text(completion))
        scores.append(0.5 if answer and answer.isalnum() else 0.0)
    return scores


def close_spelling(completions, answer, **kwargs):
    """Up to 0.5 for an answer spelled close to the gold one: partial credit while exact matches are rare."""
    scores = []
    for completion, gold in zip(completions, answer):
        given = extract_answer(completion_text(completion)) or ""
        scores.append(round(0.5 * SequenceMatcher(None, given.lower(), str(gold).lower()).ratio(), 4))
    return scores
