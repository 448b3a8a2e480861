"""Step time of ``reasoner train`` against a plain single-file TRL GRPO script, same model, data and settings.

Both sides run the same GRPOConfig (checked: the plain script's config equals the one reasoner builds),
the same GSM8K rows, the same reward code (``reasoner.rewards``) and the same seed, so they generate the
same completions: the benchmark checks that the per-step completion lengths and rewards agree, which
makes every step a like-for-like pair. Each round runs both sides in turn (ABBA order over rounds); the
first (warm-up) step of every run is left out. Two clocks are read from each side's own log: TRL's
``step_time`` (generation + forward + backward) and the wall clock between consecutive step logs (which
also covers the optimizer step and every callback: reasoner's metrics file, step line, preemption watch).

    python bench/step_time.py                     # tiny and SmolLM2, a few minutes on 2 cores
    python bench/step_time.py --models tiny --rounds 1 --steps 2
Goal: ratio <= 1.02.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

DEFAULT_STEPS = {"tiny": 12, "smollm2": 4}
MODEL_OVERRIDES = common.FAST_OVERRIDES


def steps_for(model: str, ns: argparse.Namespace) -> int:
    return ns.steps or DEFAULT_STEPS[model]


def overrides_for(model: str, ns: argparse.Namespace) -> list[str]:
    return [*MODEL_OVERRIDES[model], "--dataset.id", str(common.GSM8K_TRAIN), "--dataset.limit", str(ns.limit),
            "--max_steps", str(steps_for(model, ns)), "--save_steps", "100000", "--logging_steps", "1", "--report_to", "none"]


def run_reasoner(model: str, overrides: list[str], out: Path) -> dict:
    command = [common.python(), "-m", "reasoner.train", "--recipe", common.MODEL_RECIPES[model], "--no-resume",
               *overrides, "--model.id", str(common.builtin_model_path(model)), "--output_dir", str(out)]
    result = common.run_child(command, env={"HF_HUB_OFFLINE": "1", **common.thread_env()}).check()
    steps = common.step_records(common.read_jsonl(out / "metrics.jsonl"))
    return {"steps": steps, "wall": common.wall_deltas(steps, "time_s"), "result": result}


def run_plain(model: str, settings: Path, limit: int, steps: int, out: Path) -> dict:
    log = out / "log.jsonl"
    out.mkdir(parents=True, exist_ok=True)
    command = [common.python(), str(common.PLAIN_SCRIPT), "--model", str(common.builtin_model_path(model)),
               "--data", str(common.GSM8K_TRAIN), "--settings", str(settings), "--limit", str(limit),
               "--max-steps", str(steps), "--output-dir", str(out), "--log-jsonl", str(log)]
    result = common.run_child(command, env={"HF_HUB_OFFLINE": "1", **common.thread_env()}).check()
    records = common.step_records(common.read_jsonl(log))
    return {"steps": records, "wall": common.wall_deltas(records, "wall"), "result": result}


def same_workload(a: list[dict], b: list[dict]) -> bool:
    keys = ("completions/mean_length", "reward")
    if len(a) != len(b):
        return False
    return all(abs(float(x.get(k, 0)) - float(y.get(k, 0))) < 1e-6 for x, y in zip(a, b) for k in keys)


def bench_model(model: str, ns: argparse.Namespace, work: Path) -> dict:
    overrides = overrides_for(model, ns)
    recipe = common.load_bench_recipe(model, overrides)
    kwargs = common.grpo_kwargs(recipe)
    common.assert_same_config(recipe, kwargs)
    settings = work / f"{model}-settings.json"
    settings.write_text(json.dumps(common.plain_settings(recipe, kwargs)))
    pairs, walls, per_round, identical = [], [], [], []
    sides: dict[str, list[float]] = {"reasoner": [], "plain": []}
    wall_sides: dict[str, list[float]] = {"reasoner": [], "plain": []}
    for index, order in enumerate(common.abba(ns.rounds)):
        runs = {}
        for side in order:
            out = work / f"{model}-r{index}-{side}"
            if side == "A":
                runs["reasoner"] = run_reasoner(model, overrides, out)
            else:
                runs["plain"] = run_plain(model, settings, ns.limit, steps_for(model, ns), out)
        ours, theirs = runs["reasoner"], runs["plain"]
        t_ours = [float(r["step_time"]) for r in ours["steps"]][1:]
        t_theirs = [float(r["step_time"]) for r in theirs["steps"]][1:]
        w_ours, w_theirs = ours["wall"][1:] if len(ours["wall"]) > 1 else ours["wall"], \
            theirs["wall"][1:] if len(theirs["wall"]) > 1 else theirs["wall"]
        sides["reasoner"] += t_ours
        sides["plain"] += t_theirs
        wall_sides["reasoner"] += w_ours
        wall_sides["plain"] += w_theirs
        pairs += [a / b for a, b in zip(t_ours, t_theirs) if b > 0]
        walls += [a / b for a, b in zip(w_ours, w_theirs) if b > 0]
        if t_ours and t_theirs:
            per_round.append(common.median(t_ours) / common.median(t_theirs))
        identical.append(same_workload(ours["steps"], theirs["steps"]))
        print(f"  {model} round {index + 1}/{ns.rounds}: reasoner {common.median(t_ours):.3f} s/step, "
              f"plain {common.median(t_theirs):.3f} s/step, same completions: {identical[-1]}", flush=True)
    return {
        "model": model,
        "rounds": ns.rounds,
        "steps_per_run": steps_for(model, ns),
        "threads": common.THREADS,
        "steps_measured_per_side": len(sides["reasoner"]),
        "reasoner_step_s": common.spread(sides["reasoner"]),
        "plain_step_s": common.spread(sides["plain"]),
        "ratio": common.spread(pairs),
        "ratio_per_round": per_round,
        "wall_ratio": common.spread(walls),
        "reasoner_wall_s": common.spread(wall_sides["reasoner"]),
        "plain_wall_s": common.spread(wall_sides["plain"]),
        "same_completions": all(identical),
        "overrides": overrides,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny,smollm2", help="comma-separated: tiny, smollm2")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of both sides, ABBA order (default 2)")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"steps per run, the first is warm-up and not counted (default {DEFAULT_STEPS})")
    parser.add_argument("--limit", type=int, default=64, help="GSM8K training rows")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default bench/results)")
    parser.add_argument("--keep", action="store_true", help="keep the run folders")
    common.add_threads_flag(parser)
    ns = parser.parse_args(argv)
    common.THREADS = ns.threads
    if ns.steps is not None and ns.steps < 2:
        parser.error("--steps must be at least 2: the first step is warm-up")
    models = [m.strip() for m in ns.models.split(",") if m.strip()]
    rows, skipped = common.each_model(models, lambda model, work: bench_model(model, ns, work), "bench-step-time-",
                                      keep=ns.keep)
    headers = ["model", "rounds x steps", "reasoner s/step", "plain s/step", "ratio (median)", "ratio min..max",
               "wall ratio", "same completions"]
    print()
    print(common.table(headers, [
        [r["model"], f"{r['rounds']} x {r['steps_per_run'] - 1}", r["reasoner_step_s"]["median"],
         r["plain_step_s"]["median"], r["ratio"]["median"], f"{r['ratio']['min']:.3f}..{r['ratio']['max']:.3f}",
         r["wall_ratio"]["median"], r["same_completions"]] for r in rows]))
    for model, why in skipped.items():
        print(f"{model}: skipped: {why}")
    path = common.write_result("step_time", {"command": common.this_command(), "goal": "ratio <= 1.02",
                                             "rows": rows, "skipped": skipped}, ns.out)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
