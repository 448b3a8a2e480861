"""GPU acceptance run: the 0.5B recipe with vLLM colocated, a push to an embedded hub, a vLLM eval of the result.

    python bench/gpu.py                          # prints one table, writes bench/results/gpu.json
    python bench/gpu.py --steps 6 --out /tmp/gpu.json --model /models/Qwen2.5-0.5B-Instruct

What it assumes about the machine (a fresh one, lent for minutes):
* one NVIDIA GPU with its driver (``nvidia-smi`` works); an H200 with ~139 GiB was the target. Without a GPU
  the script says so and exits 3 without measuring anything.
* this repository's files and a Python with pip, nothing else: no hub, no internet. The first step installs
  what is missing with ``pip install -e '.[vllm]'`` (TRL's supported vLLM and a CUDA torch), from whatever
  package index pip is configured with, or ``--wheelhouse DIR`` for wheels carried to the machine
  (``--no-index --find-links``). When the packages are already there it installs nothing. Installation time
  is reported apart: the 8-minute goal covers everything after it.
* the model comes from a local folder (``--model``), or is built here: random weights of Qwen2.5-0.5B-Instruct's
  exact shape (``bench/gpu_model.py``). Speed and memory depend on the shape, the lengths and the dtypes, not on
  what the weights know; a random model writes every completion to the length limit, the slowest case, and its
  accuracy means nothing (the table says so). The data are GSM8K-style problems generated here (``--data``
  takes a GSM8K JSONL file instead).
* the hub is ``reasoner hub serve`` on 127.0.0.1 with a folder store in the work folder.

Steps: install -> build the model -> hub up -> ``accelerate launch`` of ``reasoner train --recipe
qwen2.5-0.5b-gsm8k`` for ``--steps`` steps with vLLM colocated, pushing the final model (GPU memory polled with
``nvidia-smi`` throughout) -> the pushed model downloaded from the hub and compared byte for byte with what
was pushed -> ``reasoner eval --backend vllm`` of that download.
Measured: samples/s and generated tokens/s per training step (first step left out), peak GPU memory beside
the memory planner's estimate for this GPU, push verified, eval questions/s, and the wall time of each step.

``--rehearse-on-cpu`` runs every step on a CPU with a small model of the same vocabulary and the transformers
backend, to check the script itself; its output is marked as a rehearsal, not a measurement.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402
from bench.gpu_steps import (  # noqa: E402
    EXIT_NO_GPU, EXIT_SETUP, GpuMemoryPoller, LocalHub, SetupFailed, ensure_packages, gpu_inventory, step_rates)

RECIPE = "qwen2.5-0.5b-gsm8k"
REPO_ID = "bench/qwen2.5-0.5b-grpo"
GOAL_S = 8 * 60
# A CPU rehearsal: the vocabulary and the recipe's prompts, tiny widths, a few short completions.
REHEARSAL_SHAPE = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                   "num_key_value_heads": 2}
REHEARSAL_TRAIN = ["--generation.backend", "transformers", "--bf16", "false", "--per_device_train_batch_size", "4",
                   "--gradient_accumulation_steps", "1", "--num_generations", "4", "--max_completion_length", "16",
                   "--activation_checkpointing", "false"]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="training steps (the first is left out of the rates)")
    parser.add_argument("--model", type=Path, default=None, help="local model folder (default: build the 0.5B shape here)")
    parser.add_argument("--data", default="generated", help="GSM8K JSONL file, or 'generated' (default)")
    parser.add_argument("--eval-limit", type=int, default=100, help="questions in the eval (default 100)")
    parser.add_argument("--out", type=Path, default=common.RESULTS,
                        help="a .json file, or a folder to write gpu.json into (default bench/results)")
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a new temporary one, removed after)")
    parser.add_argument("--wheelhouse", type=Path, default=None, help="install from these wheels only (pip --no-index)")
    parser.add_argument("--skip-install", action="store_true", help="use the environment as it is")
    parser.add_argument("--rehearse-on-cpu", action="store_true", help="check the script on a CPU; measures nothing")
    ns = parser.parse_args(argv)
    if ns.steps < 2:
        parser.error("--steps must be at least 2: the first step is warm-up and left out")
    if ns.eval_limit < 1:
        parser.error("--eval-limit must be positive")
    return ns


def result_path(out: Path) -> Path:
    return out if out.suffix == ".json" else out / "gpu.json"


# -- the report: a table and JSON from one measurement dict ------------------------------------------------
TABLE_HEAD = ["measure", "value", "note"]


def table_rows(m: dict[str, Any]) -> list[list[Any]]:
    """Table rows of a measurement dict (what :func:`measure` returns)."""
    train, mem, ev, wall = m["train"], m["memory"], m["eval"], m["wall_s"]
    random_note = " (random weights: meaningless)" if m["model"]["random_weights"] else ""
    return [
        ["gpu", m["gpu"]["name"], f"{m['gpu']['memory_gib']:.0f} GiB" if m["gpu"]["memory_gib"] else "-"],
        ["model", m["model"]["name"], f"{m['model']['parameters'] / 1e6:,.1f}M parameters{random_note}"],
        ["samples/s (median)", train["samples_per_s"]["median"], f"{train['samples_per_step']} completions per step, "
                                                                  f"{train['steps_measured']} steps"],
        ["generated tokens/s (median)", train["tokens_per_s"]["median"], f"mean completion {train['mean_completion_tokens']:.0f} tokens"],
        ["s/step (median)", train["step_s"]["median"], f"backend {train['backend']}"],
        ["peak GPU memory GiB", mem["peak_gib"], f"{mem['baseline_gib']:.1f} GiB in use before" if mem["peak_gib"] is not None else "not measured"],
        ["planner estimate GiB", mem["planned_gib"], f"ratio estimate/peak {mem['planned_over_peak']:.2f}" if mem["planned_over_peak"] else "-"],
        ["push to hub", "verified" if m["push"]["verified"] else "MISSING", f"{m['push']['bytes'] / 2**20:,.0f} MiB in {m['push']['files']} files"],
        ["eval questions/s", ev["questions_per_s"], f"{ev['n']} questions with model load, backend {ev['backend']}, "
                                                     f"strict accuracy {ev['strict_accuracy']}{random_note}"],
        ["wall s (after install)", wall["after_install"], f"{_goal(m)}; install {wall['install']:.0f} s, model "
                                                           f"{wall['model_build']:.0f} s, train {wall['train']:.0f} s, eval {wall['eval']:.0f} s"],
    ]


def _goal(m: dict[str, Any]) -> str:
    if m["rehearsal"]:
        return "no goal on a rehearsal"
    return f"goal {GOAL_S} s: {'met' if m['wall_s']['after_install'] <= GOAL_S else 'MISSED'}"


def render(m: dict[str, Any]) -> str:
    title = "REHEARSAL ON CPU: nothing here is a GPU measurement\n" if m["rehearsal"] else ""
    rows = [["-" if value is None else value for value in row] for row in table_rows(m)]
    return title + common.table(TABLE_HEAD, rows)


def write_json(m: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"benchmark": "gpu", "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": common.machine(), **m}
    path.write_text(json.dumps(data, indent=2, default=float) + "\n")
    return path


# -- the steps ---------------------------------------------------------------------------------------------
def build_model(ns: argparse.Namespace, work: Path) -> tuple[Path, dict[str, Any]]:
    """The model folder and what the report says about it."""
    from bench.gpu_model import QWEN25_05B, build_shaped_model, parameter_count

    if ns.model is not None:
        config = json.loads((ns.model / "config.json").read_text())
        return ns.model, {"name": str(ns.model), "random_weights": False,
                          "parameters": parameter_count({**QWEN25_05B, **{k: config[k] for k in QWEN25_05B if k in config}})}
    shape = {**QWEN25_05B, **(REHEARSAL_SHAPE if ns.rehearse_on_cpu else {})}
    folder = build_shaped_model(work / "model", shape)
    name = "Qwen2.5-0.5B-Instruct shape" if not ns.rehearse_on_cpu else "small Qwen2 (rehearsal)"
    return folder, {"name": name, "random_weights": True, "parameters": parameter_count(shape)}


def train_command(ns: argparse.Namespace, model: Path, out: Path) -> tuple[list[str], list[str]]:
    """(command, recipe overrides) of the training run."""
    overrides = ["--model.id", str(model), "--dataset.id", ns.data, "--max_steps", str(ns.steps), "--save_strategy", "no",
                 "--logging_steps", "1", "--output_dir", str(out), "--hub.push", "true", "--hub.repo_id", REPO_ID,
                 "--hub.push_checkpoints", "false", "--eval.after_training", "false", "--report_to", "none"]
    if ns.rehearse_on_cpu:
        return [common.python(), "-m", "reasoner.train", "--recipe", RECIPE, *overrides, *REHEARSAL_TRAIN], \
            overrides + REHEARSAL_TRAIN
    launcher = [common.python(), "-m", "accelerate.commands.accelerate_cli", "launch", "--config_file",
                "accelerate_configs/single_gpu.yaml", "-m", "reasoner.train"]
    return [*launcher, "--recipe", RECIPE, *overrides], overrides


def device_env(ns: argparse.Namespace, gpu: dict[str, Any]) -> dict[str, str]:
    """Children see the one GPU measured (none on a rehearsal), numbered as nvidia-smi numbers it."""
    if ns.rehearse_on_cpu:
        return {"CUDA_VISIBLE_DEVICES": "", "DS_ACCELERATOR": "cpu"}
    return {"CUDA_VISIBLE_DEVICES": gpu["visible"], "CUDA_DEVICE_ORDER": "PCI_BUS_ID", "DS_ACCELERATOR": "cuda"}


def planned_gib(overrides: list[str], gpu_gib: float | None) -> float | None:
    """The memory planner's per-GPU total for this run on this GPU (None on a CPU rehearsal)."""
    if not gpu_gib:
        return None
    from reasoner.plan import memory
    from reasoner.errors import UserError
    from reasoner.recipe.load import load_recipe

    try:
        plan = memory.estimate(load_recipe(RECIPE, overrides), nodes=1, gpus_per_node=1, gpu_memory_gb=gpu_gib)
    except UserError as exc:  # the measurement stands without it
        print(f"bench/gpu.py: the memory planner gave no estimate: {exc}", file=sys.stderr)
        return None
    return plan.training.total / 2**30


def run_training(ns: argparse.Namespace, model: Path, work: Path, hub: LocalHub, gpu: dict[str, Any]) -> dict[str, Any]:
    out = work / "run"
    command, overrides = train_command(ns, model, out)
    env = {**hub.client_env(work / "hf-home"), **device_env(ns, gpu)}
    poller = GpuMemoryPoller(gpu["id"]) if not ns.rehearse_on_cpu else None
    with poller or contextlib.nullcontext():
        result = common.run_child(command, env=env, timeout_s=20 * 60)
    result.check()
    rates = step_rates(common.step_records(common.read_jsonl(out / "metrics.jsonl")), overrides)
    peak = poller.peak_gib if poller else None
    planned = planned_gib(overrides, gpu["memory_gib"])
    memory_row = {"peak_gib": peak, "baseline_gib": poller.baseline_gib if poller else 0.0, "planned_gib": planned,
                  "planned_over_peak": planned / peak if planned and peak else None}
    return {"train": rates, "memory": memory_row, "train_wall_s": result.wall_s}


def run_eval(ns: argparse.Namespace, work: Path, model: Path, gpu: dict[str, Any]) -> dict[str, Any]:
    """``reasoner eval`` of the model pulled back from the hub (a local folder: vLLM then reads no hub itself)."""
    out = work / "eval"
    backend = ["--backend", "transformers", "--device", "cpu", "--max-new-tokens", "8"] if ns.rehearse_on_cpu \
        else ["--backend", "vllm", "--max-new-tokens", "200"]
    limit = min(ns.eval_limit, 4) if ns.rehearse_on_cpu else ns.eval_limit
    command = [common.python(), "-m", "reasoner.cli", "eval", "--model", str(model), "--recipe", RECIPE, "--data", ns.data,
               "--split", "test", "--limit", str(limit), "--output", str(out), *backend]
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(work / "hf-home-eval"), "PYTHONPATH": str(common.REPO),
           **device_env(ns, gpu)}
    result = common.run_child(command, env=env, timeout_s=15 * 60).check()
    summary = json.loads((out / "results.json").read_text())
    seconds = float(summary.get("wall_seconds") or result.wall_s)
    return {"n": summary["n"], "backend": summary["settings"]["backend"], "wall_s": result.wall_s,
            "questions_per_s": summary["n"] / seconds if seconds else None,
            "strict_accuracy": summary["metrics"].get("strict_accuracy")}


def measure(ns: argparse.Namespace, work: Path, gpu: dict[str, Any], install_s: float) -> dict[str, Any]:
    """Every step after installation; returns the measurement dict that :func:`render` and :func:`write_json` take."""
    started = time.monotonic()
    model, model_info = build_model(ns, work)
    build_s = time.monotonic() - started
    with LocalHub(work / "hub") as hub:
        training = run_training(ns, model, work, hub, gpu)
        push = hub.pull_and_compare(REPO_ID, work / "run", work / "pulled")
    evaluation = run_eval(ns, work, Path(push.pop("folder")), gpu)
    return {"rehearsal": ns.rehearse_on_cpu, "command": common.this_command(), "recipe": RECIPE, "gpu": gpu,
            "model": model_info, "train": training["train"], "memory": training["memory"], "push": push,
            "eval": evaluation, "wall_s": {"install": install_s, "model_build": build_s, "train": training["train_wall_s"],
                                           "eval": evaluation["wall_s"], "after_install": time.monotonic() - started}}


def main(argv: list[str]) -> int:
    ns = parse_args(argv)
    gpu = gpu_inventory()
    if gpu is None and not ns.rehearse_on_cpu:
        print("bench/gpu.py: no GPU on this machine (nvidia-smi lists none): nothing measured. Run it on a machine "
              "with an NVIDIA GPU, or pass --rehearse-on-cpu to check the script itself.", file=sys.stderr)
        return EXIT_NO_GPU
    gpu = gpu or {"name": "none (CPU rehearsal)", "memory_gib": None, "id": None, "visible": None}
    try:
        install_s = 0.0 if ns.skip_install else ensure_packages(ns.wheelhouse, need_vllm=not ns.rehearse_on_cpu)
    except SetupFailed as exc:
        print(f"bench/gpu.py: {exc}", file=sys.stderr)
        return EXIT_SETUP
    work = ns.work or Path(tempfile.mkdtemp(prefix="bench-gpu-"))
    try:
        measurement = measure(ns, work, gpu, install_s)
    except (RuntimeError, subprocess.SubprocessError) as exc:
        print(f"bench/gpu.py: a step failed, nothing recorded: {exc}", file=sys.stderr)
        return 1
    finally:
        if ns.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(render(measurement))
    path = write_json(measurement, result_path(ns.out))
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
