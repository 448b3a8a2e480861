"""bench/gpu.py on a CPU: it refuses to measure, and everything that does not need a GPU runs for real.

The argument parsing, the table and JSON written from a measurement, the locally built model of the 0.5B
shape (its tokenizer covers every id of the model), the step rates read from a run's log, and a rehearsal of
every step (hub, training with a push, eval of the pushed model) on the CPU with the transformers backend.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench import gpu  # noqa: E402
from bench.gpu_model import QWEN25_05B, build_shaped_model, parameter_count  # noqa: E402
from bench.gpu_steps import EXIT_NO_GPU, step_rates  # noqa: E402

SMALL = {**QWEN25_05B, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2}


def measurement(**changes) -> dict:
    """A measurement of the shape bench/gpu.py produces on a GPU (numbers invented for the formatting check)."""
    spread = lambda v: {"median": v, "min": v * 0.9, "max": v * 1.1, "iqr": v * 0.05, "n": 4}  # noqa: E731
    base = {
        "rehearsal": False, "command": "python bench/gpu.py", "recipe": "qwen2.5-0.5b-gsm8k",
        "gpu": {"name": "NVIDIA H200", "memory_gib": 139.8, "id": "0", "visible": "0"},
        "model": {"name": "Qwen2.5-0.5B-Instruct shape", "random_weights": True, "parameters": 494032768},
        "train": {"backend": "vllm", "samples_per_step": 64, "steps_measured": 4, "step_s": spread(8.0),
                  "samples_per_s": spread(8.0), "tokens_per_s": spread(1600.0), "mean_completion_tokens": 200.0},
        "memory": {"peak_gib": 61.5, "baseline_gib": 0.5, "planned_gib": 58.25, "planned_over_peak": 58.25 / 61.5},
        "push": {"repo_id": "bench/qwen2.5-0.5b-grpo", "files": 9, "bytes": 1_988_000_000, "verified": True},
        "eval": {"n": 100, "backend": "vllm", "wall_s": 70.0, "questions_per_s": 12.5, "strict_accuracy": 0.0},
        "wall_s": {"install": 0.0, "model_build": 35.0, "train": 150.0, "eval": 70.0, "after_install": 262.0},
    }
    base.update(changes)
    return base


def test_without_a_gpu_it_says_so_and_exits_3_writing_nothing(tmp_path):
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has nvidia-smi")
    result = subprocess.run([sys.executable, "bench/gpu.py", "--out", str(tmp_path)], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == EXIT_NO_GPU == 3
    assert result.stderr.startswith("bench/gpu.py: no GPU on this machine (nvidia-smi lists none): nothing measured")
    assert result.stdout == "" and list(tmp_path.iterdir()) == []


def test_arguments():
    ns = gpu.parse_args([])
    assert (ns.steps, ns.data, ns.eval_limit, ns.rehearse_on_cpu) == (5, "generated", 100, False)
    assert gpu.result_path(Path("bench/results")) == Path("bench/results/gpu.json")
    assert gpu.result_path(Path("/tmp/x/run.json")) == Path("/tmp/x/run.json")
    with pytest.raises(SystemExit) as stop:
        gpu.parse_args(["--steps", "1"])
    assert stop.value.code == 2


def test_one_table_and_json_from_a_measurement(tmp_path):
    m = measurement()
    text = gpu.render(m)
    lines = text.splitlines()
    assert lines[0].startswith("measure") and len(lines) == 2 + len(gpu.table_rows(m))
    row = {line.split("  ")[0].strip(): line for line in lines[2:]}
    assert "1,600" in row["generated tokens/s (median)"] and "8.000" in row["samples/s (median)"]
    assert "61.500" in row["peak GPU memory GiB"] and "58.250" in row["planner estimate GiB"] and "0.95" in row["planner estimate GiB"]
    assert "verified" in row["push to hub"] and "goal 480 s: met" in row["wall s (after install)"]
    assert "random weights: meaningless" in row["eval questions/s"]
    path = gpu.write_json(m, tmp_path / "deep" / "gpu.json")
    data = json.loads(path.read_text())
    assert data["benchmark"] == "gpu" and data["train"] == m["train"] and data["memory"] == m["memory"]
    assert {"cpus", "load_average", "torch", "trl"} <= set(data["machine"])


def test_a_missed_goal_and_a_rehearsal_are_said_so():
    late = measurement(wall_s={"install": 90.0, "model_build": 35.0, "train": 400.0, "eval": 70.0, "after_install": 505.0})
    assert "goal 480 s: MISSED" in gpu.render(late)
    rehearsal = gpu.render(measurement(rehearsal=True, memory={"peak_gib": None, "baseline_gib": 0.0, "planned_gib": None,
                                                                "planned_over_peak": None}))
    assert rehearsal.splitlines()[0] == "REHEARSAL ON CPU: nothing here is a GPU measurement"
    assert "None" not in rehearsal and "no goal on a rehearsal" in rehearsal


def test_the_shape_is_qwen25_05b_and_every_model_id_is_a_token(tmp_path):
    assert parameter_count(QWEN25_05B) == 494_032_768  # Qwen2.5-0.5B-Instruct's published parameter count
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = build_shaped_model(tmp_path / "model", SMALL)
    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert sum(p.numel() for p in model.parameters()) == parameter_count(SMALL)
    assert model.config.vocab_size == len(tokenizer) == 151936
    assert sorted(tokenizer.get_vocab().values()) == list(range(151936))  # one token per id, no gap, no clash
    text = tokenizer.apply_chat_template([{"role": "user", "content": "What is 2 + 2?"}], add_generation_prompt=True,
                                         tokenize=False)
    assert text.endswith("<|im_start|>assistant\n")
    ids = tokenizer("<reasoning>\n2 + 2 = 4\n</reasoning>\n<answer>\n4\n</answer>", add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == "<reasoning>\n2 + 2 = 4\n</reasoning>\n<answer>\n4\n</answer>"
    assert build_shaped_model(folder, SMALL) == folder  # built once


def test_step_rates_leave_out_the_first_step():
    records = [{"step": i, "reward": 0.0, "step_time": t, "completions/mean_length": 200.0}
               for i, t in enumerate((30.0, 8.0, 10.0, 8.0), start=1)]
    rates = step_rates(records, ["--generation.backend", "transformers"])
    assert rates["samples_per_step"] == 64 and rates["steps_measured"] == 3
    assert rates["step_s"]["median"] == 8.0 and rates["samples_per_s"]["median"] == 8.0
    assert rates["tokens_per_s"]["median"] == 1600.0


def test_a_rehearsal_runs_every_step_on_the_cpu(tmp_path):
    out = tmp_path / "rehearsal.json"
    result = subprocess.run([sys.executable, "bench/gpu.py", "--rehearse-on-cpu", "--steps", "2", "--eval-limit", "2",
                             "--out", str(out), "--skip-install"], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    title = lines.index("REHEARSAL ON CPU: nothing here is a GPU measurement")
    assert lines[title + 1].startswith("measure")
    data = json.loads(out.read_text())
    assert data["rehearsal"] is True and data["push"]["verified"] is True and data["push"]["files"] >= 5
    assert data["train"]["steps_measured"] == 1 and data["train"]["tokens_per_s"]["median"] > 0
    assert data["eval"]["n"] == 2 and data["eval"]["backend"] == "transformers"
    assert data["memory"]["peak_gib"] is None  # nothing is measured on a CPU
