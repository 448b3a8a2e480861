"""``reasoner eval --samples K`` against K greedy runs of ``reasoner eval``, on CPU with the transformers backend.

pass@1 over K samples needs K completions per question. The K samples of a question come from one batched
``generate`` call (``num_return_sequences``), so the goal is that one ``--samples K`` run costs no more than the
K single-completion runs a user would otherwise make. Both sides run in this process, through the same
``evaluate`` a user's command reaches, each call loading the model as a run does; rounds alternate the order of
the sides (ABBA), after one untimed warm-up run. Both sides ask the same questions with the same completion length limit (``--max-new-tokens``).

    python bench/eval_sampling.py                         # tiny model, K=4, 16 questions, 2 rounds
    python bench/eval_sampling.py --model smollm2 --samples 8 --questions 32
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402


def timed_eval(model: str, out: Path, *, questions: int, tokens: int, samples: int, seed: int) -> tuple[float, int]:
    """Seconds for one evaluation, and the completions it generated."""
    from reasoner.eval.run import evaluate

    started = time.perf_counter()
    result = evaluate(model, data_source="generated", num_generated=questions, limit=questions, split="test",
                      max_new_tokens=tokens, samples=samples, sampling=True, temperature=1.0, seed=seed,
                      device="cpu", backend="transformers", batch_size=questions, output_dir=out)
    return time.perf_counter() - started, result.n * samples


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", choices=["tiny", "smollm2"])
    parser.add_argument("--samples", type=int, default=4, help="K completions per question (default 4)")
    parser.add_argument("--questions", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of both sides, ABBA order (default 2)")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default bench/results)")
    common.add_threads_flag(parser)
    ns = parser.parse_args(argv)
    common.THREADS = ns.threads
    import torch

    torch.set_num_threads(ns.threads)
    work = Path(tempfile.mkdtemp(prefix="bench-eval-sampling-"))
    sampled: list[float] = []
    greedy_k: list[float] = []
    completions = {"sampled": 0, "greedy": 0}
    try:
        # one untimed run first: imports, the model's first load and torch's first kernels would bias round one
        timed_eval(ns.model, work / "warm-up", questions=ns.questions, tokens=ns.max_new_tokens, samples=1, seed=0)
        for index, order in enumerate(common.abba(ns.rounds)):
            for side in ("sampled" if s == "A" else "greedy" for s in order):
                if side == "sampled":
                    seconds, made = timed_eval(ns.model, work / f"s{index}", questions=ns.questions,
                                               tokens=ns.max_new_tokens, samples=ns.samples, seed=index)
                    sampled.append(seconds)
                else:
                    seconds, made = 0.0, 0
                    for k in range(ns.samples):  # what a user does without --samples: K runs of one completion
                        s, m = timed_eval(ns.model, work / f"g{index}-{k}", questions=ns.questions,
                                          tokens=ns.max_new_tokens, samples=1, seed=k)
                        seconds, made = seconds + s, made + m
                    greedy_k.append(seconds)
                completions[side] = made
                print(f"  round {index + 1}/{ns.rounds} {side:7} {seconds:7.2f} s for {made} completions", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratios = [a / b for a, b in zip(sampled, greedy_k) if b > 0]
    row = {"model": ns.model, "samples": ns.samples, "questions": ns.questions, "max_new_tokens": ns.max_new_tokens,
           "sampled_s": common.spread(sampled), "k_runs_s": common.spread(greedy_k), "ratio": common.spread(ratios),
           "completions": completions, "goal_met": common.spread(ratios)["median"] <= 1.0}
    print()
    print(common.table(
        ["model", "K", "questions", "--samples K s", f"{ns.samples} runs s", "ratio (median)", "ratio min..max",
         "goal <= 1"],
        [[ns.model, ns.samples, ns.questions, row["sampled_s"]["median"], row["k_runs_s"]["median"],
          row["ratio"]["median"], f"{row['ratio']['min']:.3f}..{row['ratio']['max']:.3f}",
          "met" if row["goal_met"] else "MISSED"]]))
    path = common.write_result("eval_sampling", {"command": common.this_command(), "threads": common.THREADS,
                                                 "rows": [row]}, ns.out)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
