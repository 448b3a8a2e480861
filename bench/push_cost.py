"""What background checkpoint pushes cost the training loop: step time with pushes against without.

Both sides run ``reasoner train`` on the same recipe, saving a checkpoint every ``--save-every`` steps; one
side also pushes each checkpoint to an embedded hub (this process, over HTTP) in reasoner's background
thread, the other pushes nothing. Each save happens after its step's log line, so its cost (and the
upload running beside the next step) shows in the wall-clock interval that follows a save step: those
intervals are compared separately from all steps. TRL's own ``step_time`` is reported too. Rounds
alternate the order (ABBA); the first step of every run is left out. The final push (after training) is
not a step and is not counted. The hub runs in its own process at the lowest CPU priority by default
(``--hub process``): it stands in for a hub on another machine, whose work is not the training node's.

    python bench/push_cost.py                     # tiny model, 2 rounds of 10 steps, a save every 2
    python bench/push_cost.py --rounds 1 --steps 2 --save-every 1
    python bench/push_cost.py --model smollm2 --steps 4   # a 135M model: each checkpoint is ~1.6 GB
Goal: <= 2% slower on save steps.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402


def run(hub: common.SeededHub, ns, out: Path, push: bool, repo: str) -> dict:
    command = [common.python(), "-m", "reasoner.train", "--recipe", common.MODEL_RECIPES[ns.model], "--no-resume",
               "--model.id", str(common.builtin_model_path(ns.model)), "--dataset.id", str(common.GSM8K_TRAIN),
               "--dataset.limit", str(ns.limit), "--max_steps", str(ns.steps), "--save_strategy", "steps",
               "--save_steps", str(ns.save_every), "--output_dir", str(out),
               "--hub.push", "true" if push else "false", "--hub.push_checkpoints", "true" if push else "false",
               "--hub.repo_id", repo, *common.FAST_OVERRIDES[ns.model]]
    result = common.run_child(command, env={**hub.env(), "HF_HOME": str(out / "hf-home"), **common.thread_env()})
    result.check()
    steps = common.step_records(common.read_jsonl(out / "metrics.jsonl"))
    stamps = [(int(r["step"]), float(r["time_s"])) for r in steps]
    intervals = {a[0]: b[1] - a[1] for a, b in zip(stamps, stamps[1:])}  # step k -> time until step k+1 logged
    after_save = [v for k, v in intervals.items() if k % ns.save_every == 0 and k > 1]
    others = [v for k, v in intervals.items() if k % ns.save_every and k > 1]
    every = [v for k, v in intervals.items() if k > 1] or list(intervals.values())
    step_time = [float(r["step_time"]) for r in steps][1:]
    pushes = result.output.count("(checkpoint step ") if push else 0
    return {"after_save": after_save, "others": others, "all": every, "step_time": step_time, "pushes": pushes,
            "wall_s": result.wall_s}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", choices=sorted(common.MODEL_RECIPES))
    parser.add_argument("--rounds", type=int, default=2, help="rounds of both sides, ABBA order (default 2)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--save-every", type=int, default=2)
    parser.add_argument("--limit", type=int, default=64, help="GSM8K training rows")
    parser.add_argument("--hub", choices=("process", "thread"), default="process",
                        help="process: the hub in its own process at niceness 19, standing in for a hub on another "
                             "machine (default); thread: in this process, competing with training at equal priority")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default bench/results)")
    common.add_threads_flag(parser)
    ns = parser.parse_args(argv)
    common.THREADS = ns.threads
    if ns.steps < 2 or ns.save_every < 1:
        parser.error("--steps must be at least 2 and --save-every at least 1")
    work = Path(tempfile.mkdtemp(prefix="bench-push-cost-"))
    sides = {"push": {"after_save": [], "all": [], "step_time": [], "pushes": 0},
             "none": {"after_save": [], "all": [], "step_time": [], "pushes": 0}}
    save_pairs: list[float] = []
    try:
        nice = None if ns.hub == "thread" else 19
        with common.SeededHub(work / "hub", model=ns.model, nice=nice) as hub:
            for index, order in enumerate(common.abba(ns.rounds)):
                got = {}
                for side in order:
                    name = "push" if side == "A" else "none"
                    got[name] = run(hub, ns, work / f"r{index}-{name}", name == "push", f"bench/push-cost-r{index}")
                for name, values in got.items():
                    for key in ("after_save", "all", "step_time"):
                        sides[name][key] += values[key]
                    sides[name]["pushes"] += values["pushes"]
                save_pairs += [a / b for a, b in zip(got["push"]["after_save"], got["none"]["after_save"]) if b > 0]
                print(f"  round {index + 1}/{ns.rounds}: after-save interval with pushes "
                      f"{common.median(got['push']['after_save']):.3f} s, without {common.median(got['none']['after_save']):.3f} s; "
                      f"{got['push']['pushes']} pushes", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = []
    for key, label in (("after_save", "interval after a save step"), ("all", "every step interval"),
                       ("step_time", "TRL step_time")):
        with_push, without = sides["push"][key], sides["none"][key]
        ratio = common.median(with_push) / common.median(without) if with_push and without else float("nan")
        rows.append({"measure": label, "push_s": common.spread(with_push), "none_s": common.spread(without),
                     "ratio_of_medians": ratio})
    pair = common.spread(save_pairs)
    print()
    print(common.table(["measure", "with pushes s", "no pushes s", "ratio"],
                       [[r["measure"], r["push_s"]["median"], r["none_s"]["median"], r["ratio_of_medians"]] for r in rows]))
    print(f"\nsave-step pairs (same step, same round): ratio median {pair['median']:.3f}, min..max "
          f"{pair['min']:.3f}..{pair['max']:.3f}, n {pair['n']}; checkpoint pushes made: {sides['push']['pushes']}")
    path = common.write_result("push_cost", {"command": common.this_command(), "model": ns.model, "goal": "<= 1.02",
                                             "hub": ns.hub,
                                             "rounds": ns.rounds, "steps": ns.steps, "save_every": ns.save_every,
                                             "threads": common.THREADS, "rows": rows, "save_step_pairs": pair,
                                             "pushes": sides["push"]["pushes"]}, ns.out)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
