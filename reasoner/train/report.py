"""Plots and a short summary of a training run, from the run's own logs.

Why from the logs on disk: a report must work on a finished run, on a run that is still going, and on a
run copied off a cluster, without a tracking service. Two sources exist:

* ``RUN_DIR/metrics.jsonl``: one JSON object per logging step, appended by ``reasoner.train.run`` as the run
  goes (keys exactly as TRL logs them: ``reward``, ``rewards/<name>/mean``, ``kl``, ...). Preferred,
  because it is complete at any moment.
* ``trainer_state.json`` (its ``log_history``): written by the Trainer into every ``checkpoint-*`` folder
  and, at the end, into the run folder itself. Used when there is no ``metrics.jsonl``; the newest one wins.

Series that are missing or too short to draw are skipped with a note in the summary, never an error,
because a run's early minutes or a recipe with ``beta: 0`` (no KL) legitimately lack some of them.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reasoner.errors import UserError

METRICS_FILE = "metrics.jsonl"
STATE_FILE = "trainer_state.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_REWARD_COMPONENT = re.compile(r"^rewards/(?P<name>.+)/mean$")


@dataclass(frozen=True)
class Series:
    """One metric over training: x values (steps, or epochs when no step was logged) and y values."""

    key: str
    title: str
    slug: str
    x: list[float]
    y: list[float]
    band: list[float] | None = None  # a standard deviation drawn around y, when TRL logs one


@dataclass
class RunLogs:
    """The log entries of one run and where they came from."""

    source: Path
    entries: list[dict[str, Any]]
    x_label: str


@dataclass
class ReportPaths:
    """What ``write_report`` wrote: one PNG per plotted series and the markdown summary."""

    output_dir: Path
    summary: Path
    plots: dict[str, Path] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------
# Reading the logs


def _read_metrics_jsonl(path: Path) -> list[dict[str, Any]]:
    """Entries of a metrics.jsonl; a half-written last line (the run is writing it now) is ignored."""
    entries: list[dict[str, Any]] = []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                continue  # being written right now
            raise UserError(f"{path} line {number} is not JSON; fix or remove that line and run the report again")
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def _read_state(path: Path) -> tuple[int, list[dict[str, Any]]]:
    """(global_step, log_history) of one trainer_state.json."""
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise UserError(f"cannot read {path} ({error}); is the run folder complete?") from error
    history = state.get("log_history") or []
    return int(state.get("global_step") or 0), [entry for entry in history if isinstance(entry, dict)]


def _state_files(run_dir: Path) -> list[Path]:
    """trainer_state.json files of a run: the final one and one per checkpoint folder."""
    files = [run_dir / STATE_FILE] if (run_dir / STATE_FILE).is_file() else []
    for child in run_dir.iterdir():
        if child.is_dir() and _CHECKPOINT.match(child.name) and (child / STATE_FILE).is_file():
            files.append(child / STATE_FILE)
    return files


def load_run_logs(run_dir: Path) -> RunLogs:
    """The run's log entries: metrics.jsonl when present, else the newest trainer_state.json.

    "Newest" is the state with the highest global step; on a tie the run folder's own (final) state wins
    over a checkpoint's, since it also holds the end-of-training summary (``train_runtime``).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run folder {run_dir} does not exist; pass the output_dir of a training run")
    metrics = run_dir / METRICS_FILE
    if metrics.is_file():
        entries = _read_metrics_jsonl(metrics)
        source = metrics
    else:
        best: tuple[tuple[int, int], Path, list[dict[str, Any]]] | None = None
        for path in _state_files(run_dir):
            step, history = _read_state(path)
            rank = (step, 1 if path.parent == run_dir else 0)
            if best is None or rank > best[0]:
                best = (rank, path, history)
        if best is None:
            raise UserError(
                f"{run_dir} holds no training logs ({METRICS_FILE}, {STATE_FILE} or checkpoint-*/{STATE_FILE}); "
                "pass the output_dir of a training run"
            )
        _, source, entries = best
    if not entries:
        raise UserError(f"{source} holds no log entries yet; wait for the run's first logging step and try again")
    x_label = "step" if any("step" in entry for entry in entries) else "epoch"
    return RunLogs(source=source, entries=entries, x_label=x_label)


# --------------------------------------------------------------------------------------------------
# Series


def _number(value: Any) -> float | None:
    """A finite float, or None for missing, NaN, infinities and non-numbers (TRL logs None for NaN)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _series(logs: RunLogs, key: str, title: str, slug: str, band_key: str | None = None) -> Series:
    """The values of ``key`` by step. A step logged twice (a resumed run re-logs the steps after its
    checkpoint) keeps its latest value, so the plot shows what the run that continued did."""
    points: dict[float, tuple[float, float | None]] = {}
    for index, entry in enumerate(logs.entries):
        y = _number(entry.get(key))
        if y is None:
            continue
        x = _number(entry.get(logs.x_label))
        if x is None:
            x = float(index)
        band = _number(entry.get(band_key)) if band_key else None
        points[x] = (y, band)
    xs = sorted(points)
    ys = [points[x][0] for x in xs]
    bands = [points[x][1] for x in xs]
    band = [b if b is not None else 0.0 for b in bands] if band_key and any(b is not None for b in bands) else None
    return Series(key=key, title=title, slug=slug, x=xs, y=ys, band=band)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "series"


def collect_series(logs: RunLogs) -> list[Series]:
    """The series a report shows: each reward component, total reward, KL, completion length, learning rate."""
    keys: list[str] = []
    for entry in logs.entries:
        for key in entry:
            if _REWARD_COMPONENT.match(key) and key not in keys:
                keys.append(key)
    series = []
    for key in keys:
        name = _REWARD_COMPONENT.match(key).group("name")  # type: ignore[union-attr]
        series.append(
            _series(logs, key, f"reward: {name}", f"reward_{_slug(name)}", band_key=f"rewards/{name}/std")
        )
    series.append(_series(logs, "reward", "total reward", "reward", band_key="reward_std"))
    series.append(_series(logs, "kl", "KL divergence to the reference model", "kl"))
    series.append(_series(logs, "completions/mean_length", "completion length (tokens)", "completion_length"))
    series.append(_series(logs, "learning_rate", "learning rate", "learning_rate"))
    return series


# --------------------------------------------------------------------------------------------------
# Writing


def _plot(series: Series, x_label: str, path: Path) -> None:
    """One PNG: the series as a line with markers, and its standard deviation as a shaded band."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and in CI
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4), dpi=100)
    try:
        axes.plot(series.x, series.y, marker="o", markersize=3, linewidth=1.5, color="tab:blue")
        if series.band is not None:
            low = [y - s for y, s in zip(series.y, series.band)]
            high = [y + s for y, s in zip(series.y, series.band)]
            axes.fill_between(series.x, low, high, color="tab:blue", alpha=0.2, linewidth=0, label="± std")
            axes.legend(loc="best")
        axes.set_title(series.title)
        axes.set_xlabel(x_label)
        axes.set_ylabel(series.key)
        axes.grid(True, alpha=0.3)
        if x_label == "step":
            from matplotlib.ticker import MaxNLocator

            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        if series.key == "learning_rate":
            axes.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
        figure.tight_layout()
        figure.savefig(path, format="png")
    finally:
        plt.close(figure)


def _format(value: float) -> str:
    return f"{value:.4g}"


def _duration(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{seconds:.1f} s ({int(hours)}h {int(minutes):02d}m {rest:04.1f}s)"


def _wall_time(logs: RunLogs) -> str:
    """The Trainer's end-of-training ``train_runtime``; before that, the newest ``time_s`` that
    reasoner's metrics.jsonl records with each entry (seconds since the training process started)."""
    for entry in reversed(logs.entries):
        runtime = _number(entry.get("train_runtime"))
        if runtime is not None:
            return _duration(runtime)
    for entry in reversed(logs.entries):
        elapsed = _number(entry.get("time_s"))
        if elapsed is not None:
            return f"{_duration(elapsed)} so far (no end-of-training entry: running or interrupted)"
    return "unknown (no end-of-training entry: running or interrupted)"


def _summary(run_dir: Path, logs: RunLogs, series: list[Series], paths: ReportPaths) -> str:
    steps = [x for x in (_number(e.get(logs.x_label)) for e in logs.entries) if x is not None]
    last = _format(max(steps)) if steps else "unknown"
    lines = [
        f"# Training report: {run_dir.resolve().name}",
        "",
        f"- Source: `{logs.source}`",
        f"- Last {logs.x_label}: {last} ({len(logs.entries)} log entries)",
        f"- Wall time: {_wall_time(logs)}",
        "",
        "| series | points | first | last | min | max |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for item in series:
        if item.y:
            lines.append(
                f"| `{item.key}` | {len(item.y)} | {_format(item.y[0])} | {_format(item.y[-1])} "
                f"| {_format(min(item.y))} | {_format(max(item.y))} |"
            )
    if paths.plots:
        lines += ["", "## Plots", ""]
        for key, path in paths.plots.items():
            lines.append(f"- `{key}`: [{path.name}]({path.name})")
    if paths.skipped:
        lines += ["", "## Skipped", ""]
        for key, why in paths.skipped.items():
            lines.append(f"- `{key}`: {why}")
    return "\n".join(lines) + "\n"


def write_report(run_dir: Path, output_dir: Path | None = None) -> ReportPaths:
    """Write one PNG per series and ``summary.md`` into ``output_dir`` (default ``RUN_DIR/report``)."""
    run_dir = Path(run_dir)
    logs = load_run_logs(run_dir)
    output_dir = Path(output_dir) if output_dir is not None else run_dir / "report"
    output_dir.mkdir(parents=True, exist_ok=True)
    series = collect_series(logs)
    paths = ReportPaths(output_dir=output_dir, summary=output_dir / "summary.md")
    for item in series:
        if not item.y:
            paths.skipped[item.key] = "not in the logs"
        elif len(item.y) < 2:
            paths.skipped[item.key] = f"only one value ({_format(item.y[0])}); nothing to draw yet"
        else:
            path = output_dir / f"{item.slug}.png"
            _plot(item, logs.x_label, path)
            paths.plots[item.key] = path
    paths.summary.write_text(_summary(run_dir, logs, series, paths), encoding="utf-8")
    return paths


def report_main(argv: list[str] | None = None) -> int:
    """``reasoner report RUN_DIR [--output DIR]``."""
    parser = argparse.ArgumentParser(
        prog="reasoner report",
        description="Plot rewards, KL, completion length and learning rate of a training run (finished or running).",
    )
    parser.add_argument("run_dir", type=Path, help="the run's output_dir (holds metrics.jsonl or checkpoint-*/)")
    parser.add_argument("--output", type=Path, default=None, help="where to write the report (default RUN_DIR/report)")
    args = parser.parse_args(argv)
    paths = write_report(args.run_dir, args.output)
    print(paths.summary.read_text(encoding="utf-8"), end="")
    print(f"\nReport written to {paths.output_dir} ({len(paths.plots)} plots, summary.md)")
    return 0


if __name__ == "__main__":
    import sys

    try:
        raise SystemExit(report_main(sys.argv[1:]))
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(error.exit_code)
