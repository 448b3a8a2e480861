"""Scoring one completion and a whole evaluation: pure functions, no model and no I/O.

Scoring uses the same parsers and comparisons as the rewards (``reasoner.tasks``), so "correct" means the same
thing during training and in evaluation. Two accuracies: *strict* (the answer inside the ``<answer>`` tags
equals the gold answer, what the ``correctness`` reward pays for) and *lenient* (an answer found anywhere in
the completion equals it: the last number for numeric tasks, the last ``\\boxed{}`` or expression for math, the
last line for exact answers, the last stated letter for choices). Their gap shows how much of a change in
accuracy is format and how much is knowledge.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from reasoner.rewards.builtin import strict_format
from reasoner.tasks.compare import comparison
from reasoner.tasks.completions import read_answer

__all__ = ["METRICS", "aggregate", "metric_label", "score_completion"]

# (key in results.json, label in tables, kind): rates print as percentages, lengths as tokens.
METRICS: tuple[tuple[str, str, str], ...] = (
    ("strict_accuracy", "strict accuracy (answer tags)", "rate"),
    ("lenient_accuracy", "lenient accuracy (last number)", "rate"),
    ("format_rate", "strict format", "rate"),
    ("mean_completion_tokens", "mean completion length (tokens)", "tokens"),
)
_LENIENT_ANYWHERE = "lenient accuracy (answer anywhere)"


def metric_label(key: str, label: str, settings: Mapping[str, Any] | None = None) -> str:
    """A metric's table label; lenient accuracy says "answer anywhere" unless every question is numeric."""
    kinds = set((settings or {}).get("compare_as") or ["number"])
    return _LENIENT_ANYWHERE if key == "lenient_accuracy" and kinds != {"number"} else label


def score_completion(completion: str, gold: str, compare_as: str | None = None,
                     read_from: str | None = "tags") -> dict[str, Any]:
    """Score one completion against the gold answer with the row's comparison (numbers when None).

    Returns ``extracted`` (the answer where ``read_from`` says: the tags, the last ``\\boxed{}``, or either), ``lenient_answer`` (the answer found
    anywhere, or None), ``strict_correct``, ``lenient_correct`` and ``format_ok`` (the ``strict_format`` reward
    is positive). Numbers compare by value: ``$1,000.00`` equals ``1000``.
    """
    compare = comparison(compare_as)
    extracted = read_answer(completion, read_from)
    anywhere = compare.lenient(completion)
    return {
        "extracted": extracted,
        "lenient_answer": anywhere,
        "strict_correct": compare.equal(extracted, gold),
        "lenient_correct": compare.equal(anywhere, gold),
        "format_ok": strict_format([completion])[0] > 0,
    }


def aggregate(scores: Sequence[Mapping[str, Any]], lengths: Sequence[int]) -> dict[str, float]:
    """The metrics of a run from per-question scores and completion lengths (tokens)."""
    n = len(scores)
    if n == 0:
        return {key: 0.0 for key, _, _ in METRICS}
    return {
        "strict_accuracy": sum(bool(s["strict_correct"]) for s in scores) / n,
        "lenient_accuracy": sum(bool(s["lenient_correct"]) for s in scores) / n,
        "format_rate": sum(bool(s["format_ok"]) for s in scores) / n,
        "mean_completion_tokens": sum(lengths) / n,
    }
