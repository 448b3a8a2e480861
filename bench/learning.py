"""Minutes until GRPO visibly learns on CPU: SmolLM2-135M-Instruct's strict-format reward, reasoner vs plain TRL.

Both sides run the ``smollm2-cpu`` recipe's settings (the plain script receives exactly the GRPOConfig reasoner
builds, the same few-shot prompt, the same real GSM8K train rows and the same reward code), one after the other in
one run, on all cores. For each side it reports the minutes from process launch until the moving average (over
``--window`` steps) of ``rewards/strict_format/mean`` first reaches ``--target`` (0.45 of its maximum 0.5), and the
step at which it did. Goal: reasoner within 10 minutes and no slower than the plain script.

    python bench/learning.py                      # ~20-25 minutes on 2 cores
    python bench/learning.py --steps 2 --order plain,reasoner   # smoke
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

STRICT = "rewards/strict_format/mean"


def minutes_to_target(records: list[dict], launched: float, clock: str, window: int, target: float) -> tuple[float | None, int | None]:
    """Minutes from launch and the step at which the moving average of the strict reward first reaches target."""
    values: list[float] = []
    for record in records:
        if STRICT not in record:
            continue
        values.append(float(record[STRICT]))
        recent = values[-window:]
        if len(recent) == window and sum(recent) / window >= target:
            return (float(record[clock]) - launched) / 60, int(record["step"])
    return None, None


def run_reasoner(overrides: list[str], out: Path) -> dict:
    command = [common.python(), "-m", "reasoner.train", "--recipe", "smollm2-cpu", "--no-resume", *overrides,
               "--model.id", str(common.builtin_model_path("smollm2")), "--output_dir", str(out)]
    launched = time.time()
    result = common.run_child(command, env={"HF_HUB_OFFLINE": "1"}, timeout_s=3600).check()
    records = common.step_records(common.read_jsonl(out / "metrics.jsonl"))
    return {"records": records, "launched": launched, "clock": "wall", "wall_s": result.wall_s}


def run_plain(settings: Path, steps: int, out: Path) -> dict:
    log = out / "log.jsonl"
    out.mkdir(parents=True, exist_ok=True)
    command = [common.python(), str(common.PLAIN_SCRIPT), "--model", str(common.builtin_model_path("smollm2")),
               "--data", str(common.GSM8K_TRAIN), "--settings", str(settings), "--max-steps", str(steps),
               "--output-dir", str(out), "--log-jsonl", str(log)]
    launched = time.time()
    result = common.run_child(command, env={"HF_HUB_OFFLINE": "1"}, timeout_s=3600).check()
    return {"records": common.step_records(common.read_jsonl(log)), "launched": launched, "clock": "wall",
            "wall_s": result.wall_s}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--window", type=int, default=5)
    parser.add_argument("--target", type=float, default=0.45)
    parser.add_argument("--order", default="reasoner,plain")
    parser.add_argument("--keep", type=Path, default=None, help="keep the runs' folders here (the trained model too)")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default bench/results)")
    ns = parser.parse_args(argv)

    overrides = ["--dataset.id", str(common.GSM8K_TRAIN), "--max_steps", str(ns.steps), "--save_strategy", "no",
                 "--logging_steps", "1", "--report_to", "none"]
    recipe = common.load_bench_recipe("smollm2", overrides)
    kwargs = common.grpo_kwargs(recipe)
    common.assert_same_config(recipe, kwargs)
    work = ns.keep or Path(tempfile.mkdtemp(prefix="bench-learning-"))
    work.mkdir(parents=True, exist_ok=True)
    settings = work / "settings.json"
    settings.write_text(json.dumps(common.plain_settings(recipe, kwargs)))
    runs = {}
    for side in ns.order.split(","):
        print(f"running {side} ({ns.steps} steps)...", flush=True)
        runs[side] = run_reasoner(overrides, work / "reasoner") if side == "reasoner" else \
            run_plain(settings, ns.steps, work / "plain")
    rows, payload = [], {"machine": common.machine(), "steps": ns.steps, "window": ns.window, "target": ns.target,
                         "order": ns.order, "command": common.this_command(), "sides": {}}
    for side, run in runs.items():
        minutes, step = minutes_to_target(run["records"], run["launched"], run["clock"], ns.window, ns.target)
        strict = [float(r[STRICT]) for r in run["records"] if STRICT in r]
        payload["sides"][side] = {"minutes_to_target": minutes, "step_at_target": step, "strict_by_step": strict,
                                  "wall_s": run["wall_s"]}
        rows.append([side, f"{minutes:.1f}" if minutes is not None else "not reached", step or "-",
                     f"{strict[0]:.3f}" if strict else "-", f"{strict[-1]:.3f}" if strict else "-",
                     f"{run['wall_s'] / 60:.1f}"])
    ours = payload["sides"].get("reasoner", {}).get("minutes_to_target")
    theirs = payload["sides"].get("plain", {}).get("minutes_to_target")
    payload["ratio"] = ours / theirs if ours and theirs else None
    print(common.table(["side", f"minutes to MA{ns.window} >= {ns.target}", "step", "strict step 1", "strict last",
                        "run minutes"], rows))
    if payload["ratio"]:
        print(f"ratio reasoner / plain: {payload['ratio']:.3f}")
    print(f"results: {common.write_result('learning', payload, ns.out)}")
    if ns.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
