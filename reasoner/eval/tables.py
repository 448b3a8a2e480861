"""Markdown tables of evaluation results: one model, or a model beside its baseline with the change."""

from __future__ import annotations

import math

from reasoner.eval.results import EvalResult, same_questions
from reasoner.eval.scoring import METRICS, metric_label

__all__ = ["DEFAULT_DATA", "compare", "describe", "model_card_section", "sampled_rows", "single_table"]

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
    samples = int(settings.get("samples") or 1)
    top_p = f", top_p {settings['top_p']}" if settings.get("top_p") not in (None, 1.0) else ""
    per_question = f"{samples} samples per question, " if samples > 1 else ""
    decoding = (
        f"{per_question}sampling at temperature {settings.get('temperature')}{top_p} (seed {settings.get('seed')})"
        if settings.get("sampling")
        else "greedy decoding"
    )
    data = settings.get("data_source", DEFAULT_DATA)
    held = f" (held-out {settings['holdout']:g} of split-less data sets)" if settings.get("holdout") else ""
    training = (f"; note: the questions of {', '.join(settings['training_rows'])} are training rows (no "
                f"`{result.split}` split; set eval.holdout)" if settings.get("training_rows") else "")
    return (
        f"{result.n} questions of `{data}` split `{result.split}`{held}, {decoding}, "
        f"at most {settings.get('max_new_tokens', '?')} new tokens{training}"
    )


def sampled_rows(result: EvalResult) -> list[tuple[str, str, float | None, float | None]]:
    """(metric, label, value, standard error) for the sampled metrics, overall then per task (data set)."""
    samples = int(result.settings.get("samples") or 1)
    if samples <= 1 or "pass@1" not in result.metrics:
        return []
    rows = []
    for scope, metrics in [("", result.metrics), *[(f" [{task}]", values) for task, values in result.per_task.items()
                                                  if len(result.per_task) > 1]]:
        rows += [(f"pass@1{scope}", f"pass@1, mean of {samples} samples{scope}", metrics.get("pass@1"),
                  metrics.get("pass@1_stderr")),
                 (f"pass@{samples}{scope}", f"pass@{samples}{scope}", metrics.get(f"pass@{samples}"), None),
                 (f"maj@{samples}{scope}", f"maj@{samples} (majority vote){scope}", metrics.get(f"maj@{samples}"), None)]
    return rows


def _rate(value: float | None, stderr: float | None) -> str:
    cell = _cell(value, "rate")
    return f"{cell} ± {100 * stderr:.1f}" if stderr is not None and value is not None else cell


def single_table(result: EvalResult) -> str:
    """A markdown table of one evaluation's metrics."""
    lines = [f"| metric | {result.label} |", "|---|---:|"]
    for key, label, kind in METRICS:
        lines.append(f"| {metric_label(key, label, result.settings)} | {_cell(result.metrics.get(key), kind)} |")
    lines += [f"| {label} | {_rate(value, stderr)} |" for _, label, value, stderr in sampled_rows(result)]
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
    before = {key: (value, stderr) for key, _, value, stderr in sampled_rows(baseline)}
    for key, label, value, stderr in sampled_rows(result):
        old, old_err = before.get(key, (None, None))
        lines.append(f"| {label} | {_rate(old, old_err)} | {_rate(value, stderr)} | {_change(value, old, 'rate')} |")
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
