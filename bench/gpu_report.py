"""bench/gpu.py's numbers: per-step phases from a run's own logs, the run's summary, one table and the JSON.

Pure functions of what the runs wrote (``metrics.jsonl``, the probe's generation timings), so the table and the
JSON are tested without a GPU (tests/unit/test_bench_gpu_report.py) and a CPU rehearsal fills them the same way.

Per step, from the run's logs (the first logged step is warm-up and left out):
* **step s**: wall seconds between the step's log line and the previous one's (generation, reward scoring,
  forward and backward passes, optimizer step, callbacks: the whole step as a user waits for it);
* **generation s**: the seconds TRL's own timer measured around its generate call for that step;
* **training s**: the rest (step minus generation);
* **samples/s**: completions trained on per step over the step's seconds.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any, Mapping, Sequence

GIB = 2**30
GOAL_S = 8 * 60
REHEARSAL_TITLE = "REHEARSAL ON CPU: nothing here is a GPU measurement"


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, min, max and count of a sample (nan when empty)."""
    if not values:
        return {"median": math.nan, "min": math.nan, "max": math.nan, "n": 0}
    return {"median": float(statistics.median(values)), "min": min(values), "max": max(values), "n": len(values)}


def generation_by_step(timings: Sequence[Mapping[str, Any]]) -> dict[int, float]:
    """Generation seconds per optimizer step from TRL's profiling timings. A timer records the global step at its
    start: the generation of step k runs while ``global_step`` is still k - 1."""
    found: dict[int, float] = {}
    for timing in timings:
        if "generate" in str(timing.get("name", "")):
            step = int(timing["step"]) + 1
            found[step] = found.get(step, 0.0) + float(timing["seconds"])
    return found


def step_phases(records: Sequence[Mapping[str, Any]], timings: Sequence[Mapping[str, Any]],
                samples_per_step: int) -> dict[str, Any]:
    """Step, generation and training seconds and samples/s per measured step (see the module docstring).

    ``records`` are the step records of ``metrics.jsonl`` in step order (each with ``step`` and ``time_s``)."""
    generated = generation_by_step(timings)
    rows = []
    for before, record in zip(records, records[1:]):
        wall = float(record["time_s"]) - float(before["time_s"])
        generation = generated.get(int(record["step"]), 0.0)
        rows.append((wall, generation, float(record.get("completions/mean_length", 0.0))))
    return {
        "steps_logged": len(records), "steps_measured": len(rows), "samples_per_step": samples_per_step,
        "step_s": spread([r[0] for r in rows]), "generation_s": spread([r[1] for r in rows]),
        "training_s": spread([r[0] - r[1] for r in rows]),
        "samples_per_s": spread([samples_per_step / r[0] for r in rows if r[0] > 0]),
        "tokens_per_s": spread([samples_per_step * r[2] / r[0] for r in rows if r[0] > 0]),
        "mean_completion_tokens": statistics.fmean(r[2] for r in rows) if rows else math.nan,
    }


def ratio(measured: float | None, estimated: float | None) -> float | None:
    """measured / estimated, None when either is missing, zero or not a number."""
    if not measured or not estimated or math.isnan(measured) or math.isnan(estimated):
        return None
    return measured / estimated


def compare(phases: Mapping[str, Any] | None, estimate: Mapping[str, Any] | None) -> dict[str, float | None]:
    """Measured median over the throughput model's estimate, for the step and each phase."""
    if not phases or not estimate:
        return {"step": None, "generation": None, "training": None}
    return {"step": ratio(phases["step_s"]["median"], estimate["step_s"]),
            "generation": ratio(phases["generation_s"]["median"], estimate["generation_s"]),
            "training": ratio(phases["training_s"]["median"], estimate["train_s"] + estimate["sync_s"])}


def memory_row(peak_gib: float | None, baseline_gib: float, torch_peak: Mapping[str, Any] | None,
               planned_gib: float | None) -> dict[str, float | None]:
    """The run's peak GPU memory (nvidia-smi, the whole device less what was in use before: CUDA context and
    every allocator included, as the planner counts) beside torch's own peak and the planner's estimate."""
    used = None if peak_gib is None else max(0.0, peak_gib - baseline_gib)
    reserved = (torch_peak or {}).get("reserved_bytes") or 0
    allocated = (torch_peak or {}).get("allocated_bytes") or 0
    return {"peak_gib": used, "baseline_gib": baseline_gib, "torch_reserved_gib": reserved / GIB if reserved else None,
            "torch_allocated_gib": allocated / GIB if allocated else None, "planned_gib": planned_gib,
            "planned_over_peak": ratio(planned_gib, used)}


def run_summary(spec: Mapping[str, Any], *, status: str, phases: Mapping[str, Any] | None,
                memory: Mapping[str, Any], estimate: Mapping[str, Any] | None, push: Mapping[str, Any] | None,
                wall_s: float) -> dict[str, Any]:
    """Everything the table and the JSON say about one run."""
    return {**spec, "status": status, "measured": dict(phases) if phases else None, "memory": dict(memory),
            "estimate": dict(estimate) if estimate else None, "measured_over_estimated": compare(phases, estimate),
            "push": dict(push) if push else None, "wall_s": wall_s}


def failed(spec: Mapping[str, Any], status: str) -> dict[str, Any]:
    """A run that did not train: ``status`` says why."""
    return run_summary(spec, status=status, phases=None, memory=memory_row(None, 0.0, None, None), estimate=None,
                       push=None, wall_s=0.0)


def skipped(spec: Mapping[str, Any], why: str) -> dict[str, Any]:
    """A run that was not started (no time left before the deadline)."""
    return failed(spec, f"skipped: {why}")


# -- the table ---------------------------------------------------------------------------------------------
TABLE_HEAD = ["run", "status", "steps", "s/step", "gen s", "train s", "samples/s", "peak GiB", "planned GiB",
              "est s/step", "measured/est", "push"]


def _median(phases: Mapping[str, Any] | None, key: str) -> float | None:
    value = phases[key]["median"] if phases else None
    return None if value is None or math.isnan(value) else value


def table_row(run: Mapping[str, Any]) -> list[Any]:
    phases, memory, estimate, push = run["measured"], run["memory"], run["estimate"], run["push"]
    steps = f"{phases['steps_measured']}+1" if phases else "-"
    pushed = "-" if push is None else ("verified" if push["verified"] else "NOT VERIFIED")
    estimated = f"{estimate['step_s']:.3g}" if estimate else None  # a rehearsal's estimates are microseconds
    return [run["name"], run["status"], steps, _median(phases, "step_s"), _median(phases, "generation_s"),
            _median(phases, "training_s"), _median(phases, "samples_per_s"), memory["peak_gib"],
            memory["planned_gib"], estimated, run["measured_over_estimated"]["step"], pushed]


def render(m: Mapping[str, Any], table: Any) -> str:
    """The title, the one table (``table(headers, rows)``: bench.common.table) and a line on the goal."""
    rows = [["-" if value is None else value for value in table_row(run)] for run in m["runs"]]
    head = [REHEARSAL_TITLE] if m["rehearsal"] else []
    gpu = m["gpu"]
    head.append(f"bench/gpu.py on {gpu['name']}" + (f" ({gpu['memory_gib']:.0f} GiB)" if gpu["memory_gib"] else "")
                + f": recipe {m['recipe']}, generation by transformers (vLLM off), {m['precision']}; "
                  "steps = measured + 1 warm-up; random weights (speed and memory only)")
    wall = m["wall_s"]
    return "\n".join([*head, table(TABLE_HEAD, rows),
                      f"after install: {wall['after_install']:.0f} s ({goal(m)}); install {wall['install']:.0f} s, "
                      f"model build {wall['model_build']:.0f} s"])


def goal(m: Mapping[str, Any]) -> str:
    if m["rehearsal"]:
        return "no goal on a rehearsal"
    return f"goal {GOAL_S} s: {'met' if m['wall_s']['after_install'] <= GOAL_S else 'MISSED'}"


def payload(m: Mapping[str, Any], machine: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON document: the measurement with when and where it was taken."""
    return {"benchmark": "gpu", "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": dict(machine), **m}
