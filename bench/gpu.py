"""GPU benchmark: step time and generated tokens per second of the 0.5B reference recipe, with vLLM if present.

It runs ``reasoner train --recipe qwen2.5-0.5b-gsm8k`` for a few steps (vLLM colocated when vLLM is
installed, else the transformers backend), reads TRL's ``step_time`` and completion lengths from the run's
``metrics.jsonl``, and reports the median step time (first step left out), generated tokens per second
(completions x mean length / step time), with the planner's per-GPU estimate beside them. The model and
data come from wherever ``HF_ENDPOINT`` points (``--model``/``--data`` take local paths).

On a machine without a GPU it prints why and exits 0 without writing a result: there is nothing to record.

    python bench/gpu.py                       # 6 steps
    python bench/gpu.py --steps 10 --model /models/Qwen2.5-0.5B-Instruct --data /data/gsm8k/train.jsonl
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

RECIPE = "qwen2.5-0.5b-gsm8k"


def gpu_count() -> int:
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--model", default=None, help="model id or local folder (default: the recipe's)")
    parser.add_argument("--data", default=None, help="data set id, folder or JSONL (default: the recipe's)")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default bench/results)")
    ns = parser.parse_args(argv)
    gpus = gpu_count()
    if gpus == 0:
        print("bench/gpu.py: no GPU on this machine (torch.cuda.is_available() is False); nothing to record yet. "
              "Run it where a GPU is available.")
        return 0
    import torch

    from reasoner import memory
    from reasoner.recipe import load_recipe

    vllm = importlib.util.find_spec("vllm") is not None
    overrides = ["--max_steps", str(ns.steps), "--save_steps", "100000", "--hub.push", "false"]
    if not vllm:
        overrides += ["--generation.backend", "transformers"]
    if ns.model:
        overrides += ["--model.id", ns.model]
    if ns.data:
        overrides += ["--dataset.id", ns.data]
    work = Path(tempfile.mkdtemp(prefix="bench-gpu-"))
    out = work / "run"
    command = [common.python(), "-m", "reasoner.train", "--recipe", RECIPE, "--no-resume", *overrides,
               "--output_dir", str(out)]
    result = common.run_child(command, env={"CUDA_VISIBLE_DEVICES": "0"}).check()
    steps = common.step_records(common.read_jsonl(out / "metrics.jsonl"))
    recipe = load_recipe(RECIPE, overrides)
    per_step = int(recipe.grpo["per_device_train_batch_size"]) * int(recipe.grpo.get("gradient_accumulation_steps", 1))
    times = [float(r["step_time"]) for r in steps][1:]
    tokens = [per_step * float(r.get("completions/mean_length", 0)) / float(r["step_time"]) for r in steps][1:]
    total_gib = torch.cuda.get_device_properties(0).total_memory / memory.GIB
    plan = memory.estimate(recipe, nodes=1, gpus_per_node=1, gpu_memory_gb=total_gib)
    row = {"gpu": torch.cuda.get_device_name(0), "gpus": gpus, "vllm": vllm, "steps": ns.steps,
           "step_s": common.spread(times), "generated_tokens_per_s": common.spread(tokens),
           "estimated_training_gib": plan.training.total / memory.GIB, "wall_s": result.wall_s}
    print(common.table(["gpu", "backend", "s/step (median)", "generated tok/s", "planned GiB"],
                       [[row["gpu"], "vllm colocate" if vllm else "transformers", row["step_s"]["median"],
                         row["generated_tokens_per_s"]["median"], row["estimated_training_gib"]]]))
    path = common.write_result("gpu", {"command": common.this_command(), "recipe": RECIPE, "rows": [row]}, ns.out)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
