"""Minutes until GRPO visibly learns on CPU: SmolLM2-135M-Instruct's strict-format reward, reasoner vs plain TRL.

Both sides run the ``smollm2-cpu`` recipe's settings (the plain script receives exactly the GRPOConfig reasoner
builds, the same few-shot prompt, the same real GSM8K train rows and the same reward code), one after the other in
one run, on all cores. For each side it reports the minutes from process launch until the moving average (over
``--window`` steps) of ``rewards/strict_format/mean`` first reaches ``--target`` (0.45 of its maximum 0.5), and the
step at which it did; with ``--rounds`` the sides alternate in ABBA order and the medians are compared. Goal:
reasoner within 10 minutes and no slower than the plain script.

    python bench/learning.py --rounds 2           # ABBA, 4 runs of 16 steps: ~30 minutes on 2 cores
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


def run_order(sides: list[str], rounds: int) -> list[tuple[int, str]]:
    """ABBA: round 1 in the given order, round 2 reversed, and so on, so neither side always runs first."""
    order = []
    for number in range(1, rounds + 1):
        order += [(number, side) for side in (sides if number % 2 else list(reversed(sides)))]
    return order


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=1, help="rounds of both sides, ABBA order (default 1)")
    parser.add_argument("--window", type=int, default=5)
    parser.add_argument("--target", type=float, default=0.45)
    parser.add_argument("--order", default="reasoner,plain", help="the first round's order")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep the runs' folders here (SIDE-rN: the trained models too)")
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
    sides = ns.order.split(",")
    runs: list[dict] = []
    for number, side in run_order(sides, ns.rounds):
        print(f"round {number}: running {side} ({ns.steps} steps)...", flush=True)
        folder = work / f"{side}-r{number}"
        shutil.rmtree(folder, ignore_errors=True)
        run = run_reasoner(overrides, folder) if side == "reasoner" else run_plain(settings, ns.steps, folder)
        minutes, step = minutes_to_target(run["records"], run["launched"], run["clock"], ns.window, ns.target)
        strict = [float(r[STRICT]) for r in run["records"] if STRICT in r]
        runs.append({"side": side, "round": number, "minutes_to_target": minutes, "step_at_target": step,
                     "strict_by_step": strict, "wall_s": run["wall_s"],
                     "step_wall_s": [float(b["wall"]) - float(a["wall"]) for a, b in zip(run["records"], run["records"][1:])]})
    payload = {"machine": common.machine(), "steps": ns.steps, "rounds": ns.rounds, "window": ns.window,
               "target": ns.target, "order": ns.order, "command": common.this_command(), "runs": runs, "sides": {}}
    rows = []
    for run in runs:
        strict = run["strict_by_step"]
        minutes = run["minutes_to_target"]
        rows.append([f"{run['side']} (round {run['round']})", f"{minutes:.2f}" if minutes is not None else "not reached",
                     run["step_at_target"] or "-", f"{strict[0]:.3f}" if strict else "-",
                     f"{strict[-1]:.3f}" if strict else "-", f"{run['wall_s'] / 60:.2f}"])
    for side in sides:
        mine = [r for r in runs if r["side"] == side]
        reached = [r["minutes_to_target"] for r in mine if r["minutes_to_target"] is not None]
        payload["sides"][side] = {
            "minutes_to_target": common.median(reached) if len(reached) == len(mine) else None,
            "minutes_to_target_spread": common.spread(reached) if reached else None,
            "steps_at_target": [r["step_at_target"] for r in mine],
            "median_run_minutes": common.median([r["wall_s"] / 60 for r in mine]),
        }
    ours = payload["sides"].get("reasoner", {}).get("minutes_to_target")
    theirs = payload["sides"].get("plain", {}).get("minutes_to_target")
    payload["ratio"] = ours / theirs if ours and theirs else None
    print(common.table(["run", f"minutes to MA{ns.window} >= {ns.target}", "step", "strict step 1", "strict last",
                        "run minutes"], rows))
    for side, summary in payload["sides"].items():
        minutes = summary["minutes_to_target"]
        print(f"{side}: median minutes to target {minutes:.2f}" if minutes is not None else f"{side}: target not reached in every run")
    if payload["ratio"]:
        print(f"ratio reasoner / plain (medians): {payload['ratio']:.3f}")
    print(f"results: {common.write_result('learning', payload, ns.out)}")
    if ns.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
