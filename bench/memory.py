"""The memory planner (``reasoner.plan.memory``) against measured memory: peak RSS of real CPU training processes.

For each model, one plain TRL GRPO process reports its resident memory after the imports and at its peak
over a few real GRPO steps (two by default: AdamW allocates its states at the first optimizer step, so the
second step is the steady state); ``reasoner train`` runs the same settings and its peak RSS is read by
``wait4``. The planner's estimate for the same recipe, batch and measured prompt length is set beside the
measured growth (peak RSS - RSS after the imports): weights, gradients, AdamW states and the largest
transient (activations of one micro-batch with TRL's log-prob head, or the generation KV cache).

What to expect: the planner counts the tensors autograd keeps exactly (``tests/unit/plan/test_formulas.py`` checks the
count against ``saved_tensors_hooks``), but CPU RSS also holds what glibc keeps after a free, oneDNN's
buffers and Python objects, so the measured growth is larger than the tensors alone. transformers maps the
weights lazily, so the RSS right after building the trainer does not hold them yet: only the peak is read.

    python bench/memory.py                          # tiny and SmolLM2 (8 completions x 32 tokens), 2 steps
    python bench/memory.py --models tiny --steps 1 --no-reasoner
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

MIB = 1 << 20
# SmolLM2's recipe generates 8 x 96 tokens (minutes per step on a loaded 2-core machine); 32 keeps it short.
MODEL_OVERRIDES = {"smollm2": ["--max_completion_length", "32"]}


def longest_prompt(model: str, recipe, limit: int) -> int:
    """Tokens of the longest chat-templated prompt among the first ``limit`` GSM8K rows, as TRL tokenizes it."""
    from transformers import AutoTokenizer

    from reasoner.data import build_prompt

    tokenizer = AutoTokenizer.from_pretrained(str(common.builtin_model_path(model)))
    rows = [json.loads(line) for line in common.GSM8K_TRAIN.read_text().splitlines()[:limit]]
    prompts = [build_prompt(r["question"], recipe.prompt.system, recipe.prompt.few_shot) for r in rows]
    encoded = tokenizer.apply_chat_template(prompts, add_generation_prompt=True, tokenize=True, return_dict=True)
    limit_tokens = recipe.dataset.max_prompt_tokens or 10**9
    return max(n for n in (len(ids) for ids in encoded["input_ids"]) if n <= limit_tokens)


def measure(model: str, ns, work: Path) -> dict:
    from reasoner.plan import memory

    overrides = ["--dataset.id", str(common.GSM8K_TRAIN), "--dataset.limit", str(ns.limit), "--max_steps",
                 str(ns.steps), "--save_steps", "100000", "--logging_steps", "1", *MODEL_OVERRIDES.get(model, [])]
    if ns.completion_tokens:
        overrides += ["--max_completion_length", str(ns.completion_tokens)]
    recipe = common.load_bench_recipe(model, overrides)
    kwargs = common.grpo_kwargs(recipe)
    settings = work / f"{model}-settings.json"
    settings.write_text(json.dumps(common.plain_settings(recipe, kwargs)))
    env = {"HF_HUB_OFFLINE": "1", **common.thread_env()}
    path = str(common.builtin_model_path(model))
    plain = common.run_child([common.python(), str(common.PLAIN_SCRIPT), "--model", path, "--data",
                              str(common.GSM8K_TRAIN), "--settings", str(settings), "--limit", str(ns.limit),
                              "--max-steps", str(ns.steps), "--output-dir", str(work / f"{model}-plain")], env=env).check()
    line = next(line for line in reversed(plain.output.splitlines()) if line.startswith("MEMORY "))
    rss = json.loads(line[len("MEMORY "):])
    reasoner_peak = None
    if ns.reasoner:
        ours = common.run_child([common.python(), "-m", "reasoner.train", "--recipe", common.MODEL_RECIPES[model],
                                 "--no-resume", *overrides, "--model.id", path,
                                 "--output_dir", str(work / f"{model}-reasoner")], env=env).check()
        reasoner_peak = ours.max_rss_mib

    prompt = longest_prompt(model, recipe, ns.limit)
    plan = memory.estimate(recipe, nodes=1, gpus_per_node=0, prompt_tokens=prompt)
    items = {item.name: item.bytes / MIB for item in plan.training.items}
    measured = rss["train"]["peak_mib"] - rss["imports"]["rss_mib"]
    estimated = sum(items.values())
    return {
        "model": model,
        "params": plan.model.params,
        "batch": int(recipe.grpo["per_device_train_batch_size"]),
        "prompt_tokens": prompt,
        "completion_tokens": int(recipe.grpo["max_completion_length"]),
        "steps": ns.steps,
        "rss_mib": rss,
        "reasoner_peak_rss_mib": reasoner_peak,
        "plain_peak_rss_mib": plain.max_rss_mib,
        "estimate_mib": items,
        "measured_growth_mib": measured,
        "estimated_mib": estimated,
        "estimate_over_measured": estimated / measured if measured > 0 else float("nan"),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny,smollm2", help="comma-separated: tiny, smollm2")
    parser.add_argument("--steps", type=int, default=2, help="GRPO steps per process")
    parser.add_argument("--limit", type=int, default=64, help="GSM8K training rows")
    parser.add_argument("--completion-tokens", type=int, default=None, help="max_completion_length for every model")
    parser.add_argument("--no-reasoner", dest="reasoner", action="store_false",
                        help="skip the reasoner train process (its peak RSS beside the plain script's)")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default bench/results)")
    common.add_threads_flag(parser)
    ns = parser.parse_args(argv)
    common.THREADS = ns.threads
    models = [m.strip() for m in ns.models.split(",") if m.strip()]
    rows, skipped = common.each_model(models, lambda model, work: measure(model, ns, work), "bench-memory-")
    print(common.table(
        ["model", "params", "batch x (prompt + completion)", "measured growth MiB", "estimated MiB",
         "estimate / measured", "plain peak RSS MiB", "reasoner peak RSS MiB"],
        [[r["model"], f"{r['params'] / 1e6:.1f}M", f"{r['batch']} x ({r['prompt_tokens']} + {r['completion_tokens']})",
          r["measured_growth_mib"], r["estimated_mib"], r["estimate_over_measured"], r["plain_peak_rss_mib"],
          r["reasoner_peak_rss_mib"] or "-"] for r in rows]))
    for r in rows:
        print(f"  {r['model']} estimate: " + ", ".join(f"{k} {v:,.0f}" for k, v in r["estimate_mib"].items()))
    for model, why in skipped.items():
        print(f"{model}: skipped: {why}")
    path = common.write_result("memory", {"command": common.this_command(), "threads": common.THREADS,
                                          "rows": rows, "skipped": skipped}, ns.out)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
