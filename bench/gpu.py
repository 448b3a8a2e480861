"""GPU acceptance run for an air-gapped GPU node: GRPO steps, full fine-tune and LoRA, a push to a local hub.

The device command (one prepared script; ``make gpu-wheels`` here first, then carry ``bench/wheels``):

    bash bench/gpu_accept.sh            # versions, offline install from bench/wheels, this script under a
                                        # timeout; the table, the JSON and the log land in $OUT
    python bench/gpu.py                 # the same without the wrapper: installs from bench/wheels, then runs
    python bench/gpu.py --sizes 0.5b,1.5b --steps 4 --budget-s 480 --out /tmp/gpu.json
    python bench/gpu.py --rehearse-on-cpu --skip-install    # CI: every step on a CPU, tiny shapes

What it assumes about the machine (a fresh one, lent for minutes, that reaches no network at all):
* one NVIDIA GPU with its driver (``nvidia-smi`` works); without one the script says so and exits 3;
* an image with Python 3.12, a CUDA torch, accelerate and peft, older transformers and huggingface_hub, and no
  TRL, datasets or math-verify; at most 64 MiB of files brought along. So packages are installed from the
  wheels in ``bench/wheels`` alone (``pip --no-index``; bench/gpu_wheels.py, pins in bench/gpu-wheels.txt),
  never from an index; ``--skip-install`` uses the environment as it is (the test suite never installs);
* no model can be downloaded or carried (vLLM's wheel cannot travel either): a random-weight model of
  Qwen2.5-0.5B-Instruct's exact shape (``--sizes 0.5b,1.5b`` adds 1.5B) is built on the GPU from its published
  config with the tiny tokenizer padded to its vocabulary (bench/gpu_model.py). Speed and memory depend on the
  shape, lengths and dtypes, not on what the weights know; a random model writes every completion to the length
  limit, the slowest case;
* the hub is ``reasoner hub serve`` on 127.0.0.1 with a folder store.

Steps: install -> build the model -> hub up -> for each size, a full fine-tune run and a LoRA run (``--peft.r``)
of ``reasoner train --recipe qwen2.5-0.5b-gsm8k`` for ``--steps`` steps, generation by transformers (vLLM off),
bf16 autocast over fp32 master weights (the recipe's precision; LoRA: a bf16 base and an fp32 adapter), each
pushing its final model or adapter to the hub, which is pulled back and compared byte for byte. GPU memory is polled with ``nvidia-smi`` throughout.
Measured per run (the first step is warm-up, left out): step time, generation and training time per step,
samples/s, peak GPU memory beside the memory planner's estimate for the same layout, and the step time
against the planner's throughput model (reasoner/plan/throughput.py: its generation side models vLLM, so a
transformers generate is expected to be slower than it says; the ratio measures by how much).
Everything after installation runs inside ``--budget-s`` (default 480 s, the 8-minute goal): each run gets its
share as ``reasoner train --time-budget-minutes`` (it stops cleanly, saves and pushes), a run is skipped when
too little is left, and the table is written in every case.

``--rehearse-on-cpu`` runs every step on a CPU with tiny widths and short completions, to check the script;
its table and JSON say it is a rehearsal, not a measurement.
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
from bench.gpu_report import GOAL_S, failed, payload, render, skipped  # noqa: E402
from bench.gpu_runs import RECIPE, REHEARSAL_SHAPE, RUN_MIN_S, run_one, run_specs  # noqa: E402
from bench.gpu_steps import EXIT_NO_GPU, EXIT_SETUP, LocalHub, gpu_inventory, not_ready  # noqa: E402
from bench.gpu_wheels import WHEELS, SetupFailed, install  # noqa: E402

KINDS = ("full", "lora")


def parse_args(argv: list[str]) -> argparse.Namespace:
    from bench.gpu_model import SHAPES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="training steps per run (the first is warm-up; default 4)")
    parser.add_argument("--sizes", default="0.5b", help=f"model shapes, comma-separated, of {sorted(SHAPES)} (default 0.5b)")
    parser.add_argument("--kinds", default=",".join(KINDS), help="runs per size: full, lora or both (default both)")
    parser.add_argument("--lora-r", type=int, default=16, help="the LoRA run's peft.r (default 16; alpha 2r)")
    parser.add_argument("--budget-s", type=float, default=GOAL_S,
                        help=f"seconds for everything after installation (default {GOAL_S}: the 8-minute goal)")
    parser.add_argument("--data", default="generated", help="GSM8K JSONL file, or 'generated' (default)")
    parser.add_argument("--out", type=Path, default=common.RESULTS,
                        help="a .json file, or a folder to write gpu.json into (default bench/results)")
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a new temporary one, removed after)")
    parser.add_argument("--wheels", type=Path, default=WHEELS, help="install from these wheels only (default bench/wheels)")
    parser.add_argument("--skip-install", action="store_true", help="use the environment as it is")
    parser.add_argument("--rehearse-on-cpu", action="store_true", help="check the script on a CPU; measures nothing")
    ns = parser.parse_args(argv)
    ns.sizes = [s.strip() for s in ns.sizes.split(",") if s.strip()]
    ns.kinds = [k.strip() for k in ns.kinds.split(",") if k.strip()]
    if ns.steps < 2:
        parser.error("--steps must be at least 2: the first step is warm-up and left out")
    if not ns.sizes or set(ns.sizes) - set(SHAPES):
        parser.error(f"--sizes takes {', '.join(sorted(SHAPES))} (comma-separated), got {','.join(ns.sizes) or 'nothing'}")
    if not ns.kinds or set(ns.kinds) - set(KINDS):
        parser.error(f"--kinds takes full, lora or full,lora, got {','.join(ns.kinds) or 'nothing'}")
    if ns.lora_r < 1 or ns.budget_s <= 0:
        parser.error("--lora-r and --budget-s must be positive")
    return ns


def result_path(out: Path) -> Path:
    return out if out.suffix == ".json" else out / "gpu.json"


def build_model(size: str, work: Path, rehearsal: bool) -> tuple[Path, dict[str, Any]]:
    """The model folder of ``size`` (built here, on the GPU unless rehearsing) and what the report says about it."""
    from bench.gpu_model import SHAPES, build_shaped_model, parameter_count

    shape = {**SHAPES[size], **(REHEARSAL_SHAPE if rehearsal else {})}
    started = time.monotonic()
    folder = build_shaped_model(work / f"model-{size}", shape, device="cpu" if rehearsal else "cuda")
    name = f"Qwen2.5-{size.upper()}-Instruct shape" + (", tiny widths (rehearsal)" if rehearsal else "")
    return folder, {"name": name, "random_weights": True, "parameters": parameter_count(shape),
                    "build_s": time.monotonic() - started}


def measure(ns: argparse.Namespace, work: Path, gpu: dict[str, Any], install_s: float) -> dict[str, Any]:
    """Every step after installation, inside ``ns.budget_s``; the measurement that render() and the JSON take."""
    started = time.monotonic()
    deadline = started + ns.budget_s
    where = "cpu" if ns.rehearse_on_cpu else "gpu"
    specs = run_specs(ns.sizes, ns.kinds, ns.lora_r)
    runs: list[dict[str, Any]] = []
    models: dict[str, dict[str, Any]] = {}
    with contextlib.ExitStack() as stack:
        hub: LocalHub | None = None  # started with the first run: a run skipped for time needs none
        for index, spec in enumerate(specs):
            remaining = deadline - time.monotonic()
            if remaining < RUN_MIN_S[where]:
                runs.append(skipped(spec, f"{max(0.0, remaining):.0f} s left of the budget"))
                continue
            if spec["size"] not in models:
                try:
                    folder, models[spec["size"]] = build_model(spec["size"], work, ns.rehearse_on_cpu)
                except Exception as exc:  # noqa: BLE001 - e.g. out of GPU memory: this size fails, the table stays
                    models[spec["size"]] = {"error": f"{type(exc).__name__}: {exc}", "build_s": 0.0}
                else:
                    models[spec["size"]]["folder"] = str(folder)
            if "error" in models[spec["size"]]:
                runs.append(failed(spec, f"failed: model build ({models[spec['size']]['error'][:120]})"))
                continue
            hub = hub or stack.enter_context(LocalHub(work / "hub"))
            print(f"bench/gpu.py: run {spec['name']} ({deadline - time.monotonic():.0f} s of the budget left)", flush=True)
            runs.append(run_one(spec, model=Path(models[spec["size"]]["folder"]), work=work, hub=hub, gpu=gpu,
                                steps=ns.steps, data=ns.data, rehearsal=ns.rehearse_on_cpu,
                                remaining_s=deadline - time.monotonic(), runs_left=len(specs) - index))
    for info in models.values():
        info.pop("folder", None)
    precision = ("fp32 weights, no autocast (rehearsal)" if ns.rehearse_on_cpu else
                 "bf16 autocast over fp32 master weights (LoRA: a bf16 base, fp32 adapter)")
    return {"rehearsal": ns.rehearse_on_cpu, "command": common.this_command(), "recipe": RECIPE, "gpu": gpu,
            "precision": precision, "steps": ns.steps, "budget_s": ns.budget_s, "goal_s": GOAL_S, "models": models,
            "runs": runs,
            "wall_s": {"install": install_s, "model_build": sum(m["build_s"] for m in models.values()),
                       "after_install": time.monotonic() - started}}


def prepare(ns: argparse.Namespace) -> float:
    """Install from the brought wheels (unless ``--skip-install``), then check the environment; the seconds the
    install took. SetupFailed says what is missing."""
    install_s = 0.0 if ns.skip_install else install(ns.wheels)
    problem = not_ready(need_gpu=not ns.rehearse_on_cpu, imports=not (ns.skip_install and ns.rehearse_on_cpu))
    if problem is not None:
        how = "run it without --skip-install" if ns.skip_install else f"the wheels in {ns.wheels} do not provide it"
        raise SetupFailed(f"this Python cannot run the benchmark: {problem} ({how})")
    return install_s


def main(argv: list[str]) -> int:
    ns = parse_args(argv)
    gpu = gpu_inventory()
    if gpu is None and not ns.rehearse_on_cpu:
        print("bench/gpu.py: no GPU on this machine (nvidia-smi lists none): nothing measured. Run it on a machine "
              "with an NVIDIA GPU, or pass --rehearse-on-cpu to check the script itself.", file=sys.stderr)
        return EXIT_NO_GPU
    gpu = gpu or {"name": "none (CPU rehearsal)", "memory_gib": None, "id": None, "visible": None}
    try:
        install_s = prepare(ns)
    except SetupFailed as exc:
        print(f"bench/gpu.py: {exc}", file=sys.stderr)
        return EXIT_SETUP
    work = ns.work or Path(tempfile.mkdtemp(prefix="bench-gpu-"))
    try:
        measurement = measure(ns, work, gpu, install_s)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        print(f"bench/gpu.py: a step failed, nothing recorded: {exc}", file=sys.stderr)
        return 1
    finally:
        if ns.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(render(measurement, common.table))
    path = result_path(ns.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload(measurement, common.machine()), indent=2, default=float) + "\n")
    print(f"\nwrote {path}")
    return 0 if all(run["status"] == "ok" and (run["push"] or {}).get("verified") for run in measurement["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
