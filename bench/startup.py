"""Time to first step of ``reasoner train`` against the plain TRL script, with a cold and a warm hub cache.

An embedded hub (this process, over HTTP) holds the model and GSM8K rows; both sides load them from it
through ``HF_ENDPOINT``. "Cold" is an empty ``HF_HOME`` (model, tokenizer and data are downloaded), "warm"
reuses the one the cold run just filled. Time to first step is measured from launching the process to
the first training step's line in the run's own log (reasoner's ``metrics.jsonl``, the plain script's
``--log-jsonl``), so it covers imports, the hub preflight and pinning (reasoner), downloads, data
preparation, model load and one GRPO step. Rounds alternate the order of the sides (ABBA).

    python bench/startup.py                      # tiny model, 2 rounds (ABBA)
    python bench/startup.py --rounds 1 --modes warm
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402


def run_side(side: str, hub: common.SeededHub, home: Path, out: Path, settings: Path, limit: int) -> float:
    out.mkdir(parents=True, exist_ok=True)
    env = {**hub.env(), "HF_HOME": str(home), **common.thread_env()}
    if side == "reasoner":
        log = out / "metrics.jsonl"
        command = [common.python(), "-m", "reasoner.train", "--recipe", common.MODEL_RECIPES[hub.model], "--no-resume",
                   "--model.id", hub.model_repo, "--dataset.id", hub.data_repo, "--dataset.config", "main",
                   "--dataset.limit", str(limit), "--max_steps", "1", "--save_steps", "100000",
                   "--output_dir", str(out)]
    else:
        log = out / "log.jsonl"
        command = [common.python(), str(common.PLAIN_SCRIPT), "--model", hub.model_repo, "--data", hub.data_repo,
                   "--data-config", "main", "--settings", str(settings), "--limit", str(limit), "--max-steps", "1",
                   "--output-dir", str(out), "--log-jsonl", str(log)]
    result = common.run_child(command, env=env, watch={"first_step": log}).check()
    if "first_step" not in result.first_line_s:
        raise RuntimeError(f"{side} logged no step:\n{result.output[-2000:]}")
    return result.first_line_s["first_step"]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", choices=sorted(common.MODEL_RECIPES))
    parser.add_argument("--rounds", type=int, default=2, help="rounds of both sides, ABBA order (default 2)")
    parser.add_argument("--modes", default="cold,warm", help="comma-separated: cold, warm")
    parser.add_argument("--limit", type=int, default=64, help="GSM8K training rows")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default bench/results)")
    common.add_threads_flag(parser)
    ns = parser.parse_args(argv)
    common.THREADS = ns.threads
    modes = [m.strip() for m in ns.modes.split(",") if m.strip()]
    if not set(modes) <= {"cold", "warm"}:
        parser.error("--modes takes cold and/or warm")
    work = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    times: dict[str, dict[str, list[float]]] = {m: {"reasoner": [], "plain": []} for m in modes}
    try:
        with common.SeededHub(work / "hub", model=ns.model) as hub:
            recipe = common.load_bench_recipe(ns.model, ["--max_steps", "1", "--save_steps", "100000"])
            kwargs = common.grpo_kwargs(recipe)
            common.assert_same_config(recipe, kwargs)
            settings = work / "settings.json"
            settings.write_text(json.dumps(common.plain_settings(recipe, kwargs)))
            for index, order in enumerate(common.abba(ns.rounds)):
                sides = ["reasoner" if s == "A" else "plain" for s in order]
                homes = {side: work / f"home-r{index}-{side}" for side in sides}
                for mode in ("cold", "warm"):
                    if mode == "warm" and "warm" not in modes:
                        continue
                    for side in sides:  # the cold run also fills the cache the warm run reads
                        seconds = run_side(side, hub, homes[side], work / f"{mode}-r{index}-{side}", settings, ns.limit)
                        if mode in modes:
                            times[mode][side].append(seconds)
                            print(f"  round {index + 1}/{ns.rounds} {mode:4} {side:8} first step after "
                                  f"{seconds:6.2f} s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = []
    for mode in modes:
        ours, theirs = times[mode]["reasoner"], times[mode]["plain"]
        ratios = [a / b for a, b in zip(ours, theirs) if b > 0]
        rows.append({"mode": mode, "reasoner_s": common.spread(ours), "plain_s": common.spread(theirs),
                     "ratio": common.spread(ratios), "reasoner_runs": ours, "plain_runs": theirs})
    print()
    print(common.table(
        ["cache", "rounds", "reasoner s", "plain s", "ratio (median)", "ratio min..max"],
        [[r["mode"], ns.rounds, r["reasoner_s"]["median"], r["plain_s"]["median"], r["ratio"]["median"],
          f"{r['ratio']['min']:.3f}..{r['ratio']['max']:.3f}"] for r in rows]))
    path = common.write_result("startup", {"command": common.this_command(), "model": ns.model,
                                           "threads": common.THREADS, "rows": rows}, ns.out)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
