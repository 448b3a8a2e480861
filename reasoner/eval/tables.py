"""Markdown tables of evaluation results: one model, or a model beside its baseline with the change."""

from __future__ import annotations

import math

from reasoner.eval.results import EvalResult, same_questions
from reasoner.eval.scoring import METRICS, metric_label

__all__ = ["DEFAULT_DATA", "compare", "describe", "model_card_section", "single_table"]

DEFAULT_DATA = "openai/gsm8k"


def _cell(value: float | None, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * value:.1f}%" if kind == "rate" else f"{value:.1f}"


def _change(new: float | None, old: float | None, kind: str) -> str:
    if new is None or old is None:
        return "–"
    delta = new - old
    return f"{100 * delta:+.1f} pts" if kind == "rate" else f"{delta:+.1f}"


def describe(result: EvalResult) -> str:
    """What was asked and how: "N questions of `data` split `test`, greedy decoding, at most M new tokens"."""
    settings = result.settings
    decoding = (
        f"sampling at temperature {settings.get('temperature')} (seed {settings.get('seed')})"
        if settings.get("sampling")
        else "greedy decoding"
    )
    data = settings.get("data_source", DEFAULT_DATA)
    return (
        f"{result.n} questions of `{data}` split `{result.split}`, {decoding}, "
        f"at most {settings.get('max_new_tokens', '?')} new tokens"
    )


def single_table(result: EvalResult) -> str:
    """A markdown table of one evaluation's metrics."""
    lines = [f"| metric | {result.label} |", "|---|---:|"]
    for key, label, kind in METRICS:
        lines.append(f"| {metric_label(key, label, result.settings)} | {_cell(result.metrics.get(key), kind)} |")
    return "\n".join(lines)


def compare(result: EvalResult, baseline: EvalResult) -> str:
    """A side-by-side markdown table: baseline, model, and the change, one row per metric."""
    lines = [
        f"| metric | baseline: {baseline.label} | model: {result.label} | change |",
        "|---|---:|---:|---:|",
    ]
    for key, label, kind in METRICS:
        new, old = result.metrics.get(key), baseline.metrics.get(key)
        shown = metric_label(key, label, result.settings)
        lines.append(f"| {shown} | {_cell(old, kind)} | {_cell(new, kind)} | {_change(new, old, kind)} |")
    notes = []
    if (result.n, result.split) != (baseline.n, baseline.split):
        notes.append(
            f"Note: not the same questions (baseline: {baseline.n} of split `{baseline.split}`, "
            f"model: {result.n} of split `{result.split}`)."
        )
    elif not same_questions(result.settings, baseline.settings):
        notes.append("Note: the two evaluations used different data sets.")
    return "\n".join(lines + ([""] + notes if notes else []))


def model_card_section(result: EvalResult, baseline: EvalResult | None = None) -> str:
    """Markdown for a model card's evaluation section (the caller adds the heading)."""
    kinds = set(result.settings.get("compare_as") or ["number"])
    if kinds == {"number"}:
        task, strict, lenient = "GSM8K accuracy", "the number inside `<answer>` tags", "the last number in the completion"
    else:
        task = f"Accuracy ({', '.join(sorted(kinds))} answers)"
        strict, lenient = "the answer inside `<answer>` tags", "the answer found anywhere in the completion"
    lines = [
        f"{task} on {describe(result)}. Strict: {strict} equals the gold answer. Lenient: {lenient} "
        "does. Strict format: the completion has exactly the `<reasoning>`/`<answer>` shape. Measured with "
        "`reasoner eval`.",
        "",
        compare(result, baseline) if baseline is not None else single_table(result),
    ]
    return "\n".join(lines) + "\n"
