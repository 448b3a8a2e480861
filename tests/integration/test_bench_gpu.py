"""bench/gpu.py on a CPU: it refuses to measure, and the device command rehearses every step for real.

The rehearsal runs ``bash bench/gpu_accept.sh --rehearse-on-cpu --skip-install`` as CI's stand-in for the GPU
node: the wrapper prints versions and the wheel set, bench/gpu.py builds a tiny-width model of the recipe's
family, starts ``reasoner hub serve``, trains a full fine-tune and a LoRA run with transformers generation
(TRL's generation timer read through bench/gpu_probe.py), pushes both, pulls them back and compares them byte
for byte, asks the planner about the same runs, and writes the table and the JSON. The pure parts (table, JSON,
wheel set) are unit-tested in tests/unit/test_bench_gpu_report.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench import gpu  # noqa: E402
from bench.gpu_model import QWEN25_05B, QWEN25_15B, build_shaped_model, parameter_count  # noqa: E402
from bench.gpu_report import REHEARSAL_TITLE  # noqa: E402
from bench.gpu_runs import REHEARSAL_SHAPE  # noqa: E402
from bench.gpu_steps import EXIT_NO_GPU  # noqa: E402

SMALL = {**QWEN25_05B, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2}


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
    assert (ns.steps, ns.sizes, ns.kinds, ns.lora_r, ns.budget_s) == (4, ["0.5b"], ["full", "lora"], 16, 480)
    assert gpu.parse_args(["--sizes", "0.5b,1.5b", "--kinds", "lora"]).sizes == ["0.5b", "1.5b"]
    assert gpu.result_path(Path("bench/results")) == Path("bench/results/gpu.json")
    assert gpu.result_path(Path("/tmp/x/run.json")) == Path("/tmp/x/run.json")
    for bad in (["--steps", "1"], ["--sizes", "7b"], ["--kinds", "qlora"], ["--budget-s", "0"]):
        with pytest.raises(SystemExit) as stop:
            gpu.parse_args(bad)
        assert stop.value.code == 2, bad


def test_the_shapes_are_qwen25_and_every_model_id_is_a_token(tmp_path):
    # Qwen2.5-0.5B-Instruct's and Qwen2.5-1.5B-Instruct's published parameter counts
    assert parameter_count(QWEN25_05B) == 494_032_768 and parameter_count(QWEN25_15B) == 1_543_714_304
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


def test_out_of_budget_runs_are_skipped_and_the_table_is_still_written(tmp_path):
    out = tmp_path / "late.json"
    result = subprocess.run([sys.executable, "bench/gpu.py", "--rehearse-on-cpu", "--skip-install", "--budget-s", "1",
                             "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr[-2000:]  # nothing was measured: not an acceptance
    data = json.loads(out.read_text())
    assert [run["name"] for run in data["runs"]] == ["0.5b-full", "0.5b-lora"]
    assert all(run["status"].startswith("skipped: ") and run["measured"] is None for run in data["runs"])
    assert "0.5b-full  skipped" in result.stdout and data["models"] == {}


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    """One run of the device command in rehearsal, its outputs kept (the work folder too, to read the pushes)."""
    out = tmp_path_factory.mktemp("gpu-accept")
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(["bash", "bench/gpu_accept.sh", "--rehearse-on-cpu", "--skip-install", "--steps", "2",
                             "--work", str(out / "work")], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=600)
    return result, out, json.loads((out / "gpu.json").read_text()) if (out / "gpu.json").is_file() else None


def test_the_device_command_rehearses_every_step(rehearsal):
    result, out, data = rehearsal
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    log = (out / "gpu.log").read_text()
    assert log == result.stdout  # everything printed is in $OUT
    assert "== packages before" in log and "total in" in log and "bench/gpu.py exited 0" in log
    lines = log.splitlines()
    title = lines.index(REHEARSAL_TITLE)
    assert lines[title + 2].startswith("run ") and lines[title + 4].startswith("0.5b-full  ok")
    assert lines[title + 5].startswith("0.5b-lora  ok")
    assert {"pip-list-before.txt", "pip-list-after.txt"} <= {p.name for p in out.iterdir()}
    assert data["rehearsal"] is True and data["gpu"]["memory_gib"] is None
    assert data["models"]["0.5b"]["parameters"] == parameter_count({**QWEN25_05B, **REHEARSAL_SHAPE})


@pytest.mark.parametrize("kind", ["full", "lora"])
def test_each_run_measures_its_phases_beside_the_planner(rehearsal, kind):
    _result, _out, data = rehearsal
    run = next(r for r in data["runs"] if r["kind"] == kind)
    assert run["status"] == "ok"
    measured = run["measured"]
    assert (measured["steps_logged"], measured["steps_measured"], measured["samples_per_step"]) == (2, 1, 4)
    step, generation, training = (measured[k]["median"] for k in ("step_s", "generation_s", "training_s"))
    assert 0 < generation < step and training == pytest.approx(step - generation)  # TRL's timer fell on the step
    assert measured["samples_per_s"]["median"] == pytest.approx(4 / step)
    assert measured["mean_completion_tokens"] <= 16
    estimate = run["estimate"]
    assert estimate["backend"] == "transformers" and estimate["completions"] == 4 and estimate["fits"] is True
    assert 0 < estimate["generation_s"] < estimate["step_s"]
    assert run["measured_over_estimated"]["step"] == pytest.approx(step / estimate["step_s"])
    # the planner counts a reference model for full fine-tuning (beta 0.04); LoRA's is the base, adapter disabled
    assert ("reference model" in estimate["memory_items"]) == (kind == "full")
    assert run["memory"]["planned_gib"] == estimate["memory_gib"] > 0 and run["memory"]["peak_gib"] is None


def test_both_pushes_come_back_byte_for_byte(rehearsal):
    _result, out, data = rehearsal
    full, lora = (next(r for r in data["runs"] if r["kind"] == k) for k in ("full", "lora"))
    assert full["push"]["verified"] is True and "model.safetensors" in full["push"]["compared"]
    assert lora["push"]["verified"] is True and "adapter_model.safetensors" in lora["push"]["compared"]
    adapter = json.loads((out / "work" / "0.5b-lora-pulled" / "adapter_config.json").read_text())
    assert (adapter["r"], adapter["lora_alpha"]) == (16, 32)
    assert {"q_proj", "v_proj", "down_proj"} <= {name.rsplit(".", 1)[-1] for name in adapter["target_modules"]}
    assert not (out / "work" / "0.5b-full-pulled" / "adapter_config.json").exists()
