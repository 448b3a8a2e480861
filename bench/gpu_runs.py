"""One training run of bench/gpu.py: its recipe overrides, the child that trains, and what it measured.

A run is ``reasoner train --recipe qwen2.5-0.5b-gsm8k`` in a child process (through bench/gpu_probe.py, which
adds TRL's generation timer and torch's peak memory to the run's own ``metrics.jsonl``), with the benchmark's
overrides: the locally built model, generated GSM8K-style data, generation by transformers (vLLM off),
``--max_steps``, a final push to the embedded hub, and for a LoRA run the recipe's ``peft:`` keys. The recipe's
precision is kept: fp32 master weights with bf16 autocast on a GPU.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Mapping

from bench import common
from bench.gpu_estimate import planned
from bench.gpu_report import memory_row, run_summary, step_phases
from bench.gpu_steps import GpuMemoryPoller, LocalHub

RECIPE = "qwen2.5-0.5b-gsm8k"
# A CPU rehearsal: the recipe's prompts, tiny widths and the tiny tokenizer's own 512-entry vocabulary (a
# 151,936-row LM head alone makes a CPU step take 20 s), a few short completions, fp32.
REHEARSAL_SHAPE = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                   "num_key_value_heads": 2, "vocab_size": 512}
REHEARSAL_TRAIN = ["--bf16", "false", "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "1",
                   "--num_generations", "4", "--max_completion_length", "16", "--activation_checkpointing", "false"]
# Seconds a run needs besides its steps (imports, model load, save, push): the time budget it gets for training
# is its share of what is left, less this; a run is not started with less than RUN_MIN_S left.
RUN_OVERHEAD_S = {"gpu": 75.0, "cpu": 30.0}
RUN_MIN_S = {"gpu": 100.0, "cpu": 20.0}


def run_specs(sizes: list[str], kinds: list[str], lora_r: int) -> list[dict[str, Any]]:
    """The runs in the order they are made: each size, full fine-tune then LoRA."""
    return [{"name": f"{size}-{kind}", "size": size, "kind": kind, "lora_r": lora_r if kind == "lora" else None,
             "repo_id": f"bench/qwen2.5-{size}-{kind}"} for size in sizes for kind in kinds]


def train_overrides(spec: Mapping[str, Any], *, model: Path, out: Path, steps: int, data: str,
                    rehearsal: bool) -> list[str]:
    """The recipe overrides of one run."""
    overrides = ["--model.id", str(model), "--dataset.id", data, "--max_steps", str(steps), "--save_strategy", "no",
                 "--logging_steps", "1", "--output_dir", str(out), "--hub.push", "true", "--hub.repo_id",
                 spec["repo_id"], "--hub.push_checkpoints", "false", "--eval.after_training", "false",
                 "--report_to", "none", "--generation.backend", "transformers"]
    if spec["kind"] == "lora":  # as the packaged LoRA recipes set it: alpha 2r, every projection
        r = int(spec["lora_r"])
        overrides += ["--peft.r", str(r), "--peft.lora_alpha", str(2 * r), "--peft.lora_dropout", "0.05",
                      "--peft.target_modules", "all-linear", "--learning_rate", "2e-5"]
    return overrides + (REHEARSAL_TRAIN if rehearsal else [])


def samples_per_step(overrides: list[str]) -> int:
    """Completions trained on per optimizer step (one process): batch per device x gradient accumulation."""
    from reasoner.recipe.load import load_recipe

    grpo = load_recipe(RECIPE, overrides).grpo
    return int(grpo["per_device_train_batch_size"]) * int(grpo.get("gradient_accumulation_steps", 1))


def device_env(rehearsal: bool, gpu: Mapping[str, Any]) -> dict[str, str]:
    """Children see the one GPU measured (none on a rehearsal), numbered as nvidia-smi numbers it."""
    if rehearsal:
        return {"CUDA_VISIBLE_DEVICES": "", "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1"}
    return {"CUDA_VISIBLE_DEVICES": gpu["visible"], "CUDA_DEVICE_ORDER": "PCI_BUS_ID", "DS_ACCELERATOR": "cuda"}


def budgets(remaining_s: float, runs_left: int, where: str) -> tuple[float, float]:
    """(training time budget in minutes, hard timeout in seconds) of the next run: its fair share of what is left
    for training, and everything left as the last resort (the run then still saves and pushes)."""
    share = remaining_s / max(1, runs_left)
    minutes = max(0.25, (share - RUN_OVERHEAD_S[where]) / 60)
    return minutes, max(10.0, remaining_s - 5.0)


def status_of(code: int, logged: int, steps: int, timed_out: bool) -> str:
    if timed_out:
        return f"killed at the deadline after {logged} step(s)"
    if code != 0:
        return f"failed (exit code {code})"
    return "ok" if logged >= steps else f"stopped by its time budget at step {logged}"


def run_one(spec: Mapping[str, Any], *, model: Path, work: Path, hub: LocalHub, gpu: Mapping[str, Any],
            steps: int, data: str, rehearsal: bool, remaining_s: float, runs_left: int) -> dict[str, Any]:
    """Train, read what the run wrote, pull its push back from the hub, and ask the planner about the same run."""
    out = work / spec["name"]
    overrides = train_overrides(spec, model=model, out=out, steps=steps, data=data, rehearsal=rehearsal)
    minutes, timeout_s = budgets(remaining_s, runs_left, "cpu" if rehearsal else "gpu")
    command = [common.python(), "-m", "bench.gpu_probe", "--timings", str(work / f"{spec['name']}-timings.jsonl"),
               "--memory", str(work / f"{spec['name']}-memory.json"), "--", "--recipe", RECIPE,
               "--time-budget-minutes", f"{minutes:.3f}", *overrides]
    env = {**hub.client_env(work / "hf-home"), **device_env(rehearsal, gpu)}
    poller = None if rehearsal else GpuMemoryPoller(gpu["id"])
    started = time.monotonic()
    with poller or contextlib.nullcontext():
        result = common.run_child(command, env=env, timeout_s=timeout_s)
    wall = time.monotonic() - started
    records = common.step_records(common.read_jsonl(out / "metrics.jsonl"))
    timed_out = wall >= timeout_s
    status = status_of(result.returncode, len(records), steps, timed_out)
    if result.returncode != 0 and not timed_out:
        print(f"bench/gpu.py: run {spec['name']} {status}:\n" + "\n".join(result.output.splitlines()[-30:]))
    timings = common.read_jsonl(work / f"{spec['name']}-timings.jsonl")
    phases = step_phases(records, timings, samples_per_step(overrides)) if len(records) >= 2 else None
    torch_peak = _read_json(work / f"{spec['name']}-memory.json")
    estimate = planned(RECIPE, overrides, float(gpu["memory_gib"] or 80.0))
    memory = memory_row(poller.peak_gib if poller else None, poller.baseline_gib if poller else 0.0, torch_peak,
                        estimate["memory_gib"] if estimate else None)
    push = None
    if result.returncode == 0:
        try:
            push = hub.pull_and_compare(spec["repo_id"], out, work / f"{spec['name']}-pulled")
        except Exception as exc:  # noqa: BLE001 - a push that cannot be read back is a finding, not a crash
            push = {"repo_id": spec["repo_id"], "verified": False, "error": f"{type(exc).__name__}: {exc}"}
    summary = run_summary(spec, status=status, phases=phases, memory=memory, estimate=estimate, push=push, wall_s=wall)
    summary["time_budget_minutes"] = minutes
    return summary


def _read_json(path: Path) -> dict[str, Any] | None:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
