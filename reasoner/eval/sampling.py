"""Metrics over K sampled completions per question: pass@1 (the mean over samples, with its standard error),
unbiased pass@K and majority vote (maj@K), as reasoning results are reported.

pass@K uses the unbiased estimator of Chen et al. (2021), ``1 - C(n-c, k) / C(n, k)`` for ``c`` correct of ``n``
samples; with ``n == k`` it is the share of questions with at least one correct sample. maj@K takes the answer
most samples give (answers grouped by the task's own comparison, so ``0.5`` and ``\\frac{1}{2}`` vote together;
samples without an answer do not vote; a tie goes to the answer given first) and scores it against the gold.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from reasoner.tasks.compare import comparison

__all__ = ["majority_answer", "pass_at_k", "sampled_metrics", "per_task_metrics"]


def pass_at_k(n: int, c: int, k: int) -> float:
    """The probability that at least one of ``k`` samples drawn from ``n`` (``c`` correct) is correct."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def majority_answer(answers: Sequence[str | None], compare_as: str | None) -> str | None:
    """The answer most samples agree on by the task's comparison (first given wins a tie), or None."""
    equal = comparison(compare_as).equal
    groups: list[list[str]] = []
    for answer in answers:
        if answer is None:
            continue
        group = next((g for g in groups if g[0] == answer or equal(answer, g[0])), None)
        if group is None:
            groups.append([answer])
        else:
            group.append(answer)
    return max(groups, key=len)[0] if groups else None


def sampled_metrics(groups: Sequence[Sequence[Mapping[str, Any]]], k: int) -> dict[str, float]:
    """pass@1 with its standard error over questions, pass@k and maj@k from each question's ``k`` scored samples."""
    if not groups:
        return {}
    per_question = [sum(bool(s["strict_correct"]) for s in group) / len(group) for group in groups]
    count = len(per_question)
    mean = sum(per_question) / count
    variance = sum((p - mean) ** 2 for p in per_question) / (count - 1) if count > 1 else 0.0
    majority = []
    for group in groups:
        first = group[0]
        vote = majority_answer([s["extracted"] for s in group], first.get("compare_as"))
        majority.append(vote is not None and comparison(first.get("compare_as")).equal(vote, first["gold"]))
    return {
        "pass@1": mean,
        "pass@1_stderr": math.sqrt(variance / count),
        f"pass@{k}": sum(pass_at_k(len(g), sum(bool(s["strict_correct"]) for s in g), k) for g in groups) / count,
        f"maj@{k}": sum(majority) / count,
    }


def per_task_metrics(groups: Sequence[Sequence[Mapping[str, Any]]], k: int) -> dict[str, dict[str, float]]:
    """``sampled_metrics`` for the questions of each task (data set) separately, keyed by the data set."""
    tasks: dict[str, list[Sequence[Mapping[str, Any]]]] = {}
    for group in groups:
        tasks.setdefault(str(group[0].get("source", "task")), []).append(group)
    return {task: sampled_metrics(members, k) for task, members in tasks.items()}
