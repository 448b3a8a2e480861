"""The pure parts of the GPU acceptance run: the wheel set it brings, and the table and JSON it writes.

The wheel set is what an air-gapped node can install (bench/gpu-wheels.txt, bench/wheels); the report turns
a run's own logs into step, generation and training time beside the planner's estimate.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench import common  # noqa: E402
from bench.gpu_report import (  # noqa: E402
    REHEARSAL_TITLE, compare, failed, generation_by_step, memory_row, render, run_summary, skipped, step_phases)
from bench.gpu_wheels import (  # noqa: E402
    MIB, PINS, Pin, check_wheel_set, download_command, install_commands, install_failure, parse_pins, unmet,
    wheel_name_version)

PINS_TEXT = "trl==1.16.0  # GRPO\n\n# a comment\ntyping_extensions==4.16.0\n"
FILES = {"trl-1.16.0-py3-none-any.whl": 900_000, "typing_extensions-4.16.0-py3-none-any.whl": 45_000}


# -- the wheel set ---------------------------------------------------------------------------------------------
def test_pins_are_exact_versions_with_normalized_names():
    assert parse_pins(PINS_TEXT) == [Pin("trl", "1.16.0"), Pin("typing-extensions", "4.16.0")]
    with pytest.raises(ValueError, match="line 1 of the pins is not 'name==version': 'trl>=1.16'"):
        parse_pins("trl>=1.16\n")
    with pytest.raises(ValueError, match="pinned more than once: typing-extensions"):
        parse_pins("typing_extensions==4.16.0\ntyping-extensions==4.15.0\n")


def test_the_packaged_pins_bring_what_the_image_lacks_and_nothing_that_cannot_travel():
    pins = {pin.name: pin.version for pin in parse_pins(PINS.read_text())}
    assert {"trl", "transformers", "datasets", "huggingface-hub", "math-verify", "blake3", "lz4"} <= set(pins)
    assert pins["trl"] == "1.16.0" and pins["huggingface-hub"] == "2.4.0"
    assert not {"torch", "vllm", "pyarrow", "boto3"} & set(pins)  # the image's CUDA torch; too large; S3 only
    lines = [line for line in PINS.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert all("#" in line for line in lines), "every pin says why it is there"


def test_a_wheel_folder_must_hold_exactly_the_pins():
    pins = parse_pins(PINS_TEXT)
    assert check_wheel_set(pins, FILES).problems == ()
    assert check_wheel_set(pins, FILES).total == 945_000
    problems = check_wheel_set(pins, {"trl-1.15.0-py3-none-any.whl": 1, "trl-1.16.0-py3-none-any.whl": 1,
                                      "vllm-0.30.0-cp38-abi3-manylinux_2_31_x86_64.whl": 1, "notes.txt": 1}).problems
    assert problems == ("notes.txt: not a wheel", "trl-1.15.0-py3-none-any.whl: version 1.15.0, pinned 1.16.0",
                        "vllm-0.30.0-cp38-abi3-manylinux_2_31_x86_64.whl: not pinned in bench/gpu-wheels.txt "
                        "(remove it, or pin it there)",
                        "trl: 2 wheels (1.15.0, 1.16.0); pip needs exactly one",
                        "typing-extensions==4.16.0: no wheel (run make gpu-wheels)")
    over = check_wheel_set(pins, {name: 30 * MIB for name in FILES}, limit=40 * MIB).problems
    assert over == ("the wheels total 60.0 MiB, over the 40 MiB allowed (a device run carries 64 MiB with the "
                    "working tree)",)
    assert wheel_name_version("hf_xet-1.8.0-cp38-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.whl") == ("hf-xet", "1.8.0")
    assert wheel_name_version("trl-1.16.0.tar.gz") is None


def test_download_is_pinned_for_python_312_manylinux_and_install_never_reaches_an_index():
    command = download_command(Path("/w"))
    assert command[3:5] == ["download", "--no-deps"] and "--only-binary=:all:" in command
    assert command[command.index("--python-version") + 1] == "3.12" and "manylinux2014_x86_64" in command
    assert command[-2:] == ["-r", str(PINS)]
    reasoner, hub = install_commands("python3", Path("/w"))
    for step in (reasoner, hub):
        assert "--no-index" in step and step[step.index("--find-links") + 1] == "/w"
        assert not any("index-url" in arg for arg in step)
    assert reasoner[-4:] == ["-e", str(REPO), "blake3", "lz4"] and "--no-deps" not in reasoner
    assert "--no-deps" in hub and hub[-1] == str(REPO / "hub")


def test_requirements_the_environment_does_not_meet_are_named():
    have = {"trl": "1.16.0", "transformers": "5.17.0", "torch": "2.11.0+cu130"}.get
    assert unmet(["trl>=1.16,<2", "torch>=2.6,<2.15"], have) == []
    assert unmet(["transformers>=5.24,<6", "math-verify>=0.9", "tomli; python_version < '3.0'"], have) == [
        "transformers: 5.17.0 installed, need <6,>=5.24", "math-verify: not installed (need >=0.9)"]


def test_a_failed_offline_install_names_the_missing_wheel():
    output = "ERROR: Could not find a version\nERROR: No matching distribution found for kernels<0.20,>=0.19.1\n"
    assert install_failure(output, 1).startswith("the wheels lack kernels<0.20,>=0.19.1 (pip exit code 1): add it to "
                                                 "bench/gpu-wheels.txt")
    assert install_failure("ERROR: disk full\n", 1) == "pip install from the wheels failed (exit code 1): ERROR: disk full"


# -- the report ------------------------------------------------------------------------------------------------
RECORDS = [{"step": 1, "time_s": 30.0, "completions/mean_length": 200.0},
           {"step": 2, "time_s": 38.0, "completions/mean_length": 200.0},
           {"step": 3, "time_s": 48.0, "completions/mean_length": 100.0}]
# TRL's timers: generation of step k starts while global_step is k - 1; other timers are not generation
TIMINGS = [{"name": "GRPOTrainer.transformers.generate", "step": 0, "seconds": 20.0},
           {"name": "GRPOTrainer.transformers.generate", "step": 1, "seconds": 6.0},
           {"name": "GRPOTrainer._calculate_rewards", "step": 1, "seconds": 0.5},
           {"name": "GRPOTrainer.transformers.generate", "step": 2, "seconds": 7.0}]
ESTIMATE = {"step_s": 2.0, "generation_s": 1.0, "train_s": 0.9, "sync_s": 0.1, "memory_gib": 20.0}


def test_phases_per_step_leave_out_the_warm_up_step():
    assert generation_by_step(TIMINGS) == {1: 20.0, 2: 6.0, 3: 7.0}
    phases = step_phases(RECORDS, TIMINGS, samples_per_step=64)
    assert (phases["steps_logged"], phases["steps_measured"]) == (3, 2)
    assert phases["step_s"] == {"median": 9.0, "min": 8.0, "max": 10.0, "n": 2}
    assert phases["generation_s"]["median"] == 6.5 and phases["training_s"]["median"] == 2.5
    assert phases["samples_per_s"]["median"] == pytest.approx((8.0 + 6.4) / 2)
    assert phases["tokens_per_s"]["max"] == 1600.0 and phases["mean_completion_tokens"] == 150.0
    assert compare(phases, ESTIMATE) == {"step": 4.5, "generation": 6.5, "training": 2.5}
    assert compare(None, ESTIMATE)["step"] is None and compare(phases, None)["training"] is None
    empty = step_phases(RECORDS[:1], [], samples_per_step=64)
    assert empty["steps_measured"] == 0 and math.isnan(empty["step_s"]["median"])


def test_memory_is_what_the_run_added_beside_the_plan():
    row = memory_row(25.5, 0.5, {"reserved_bytes": 22 * 2**30, "allocated_bytes": 20 * 2**30}, 20.0)
    assert row == {"peak_gib": 25.0, "baseline_gib": 0.5, "torch_reserved_gib": 22.0, "torch_allocated_gib": 20.0,
                   "planned_gib": 20.0, "planned_over_peak": 0.8}
    assert memory_row(None, 0.0, None, 20.0)["planned_over_peak"] is None


def measurement(rehearsal: bool = False, after_install: float = 300.0) -> dict:
    phases = step_phases(RECORDS, TIMINGS, samples_per_step=64)
    spec = {"name": "0.5b-full", "size": "0.5b", "kind": "full"}
    done = run_summary(spec, status="ok", phases=phases, memory=memory_row(25.5, 0.5, None, 20.0), estimate=ESTIMATE,
                       push={"verified": True}, wall_s=90.0)
    late = skipped({"name": "0.5b-lora", "size": "0.5b", "kind": "lora"}, "12 s left of the budget")
    return {"rehearsal": rehearsal, "recipe": "qwen2.5-0.5b-gsm8k", "precision": "bf16 autocast over fp32 master weights",
            "gpu": {"name": "NVIDIA H100 80GB HBM3", "memory_gib": 79.6}, "runs": [done, late],
            "wall_s": {"install": 40.0, "model_build": 6.0, "after_install": after_install}}


def test_one_table_with_a_row_per_run():
    text = render(measurement(), common.table)
    lines = text.splitlines()
    assert lines[0].startswith("bench/gpu.py on NVIDIA H100 80GB HBM3 (80 GiB): recipe qwen2.5-0.5b-gsm8k")
    assert lines[1].split() == ["run", "status", "steps", "s/step", "gen", "s", "train", "s", "samples/s", "peak", "GiB",
                                "planned", "GiB", "est", "s/step", "measured/est", "push"]
    assert lines[3].split() == ["0.5b-full", "ok", "2+1", "9.000", "6.500", "2.500", "7.200", "25.000", "20.000", "2",
                                "4.500", "verified"]
    assert lines[4].split()[:5] == ["0.5b-lora", "skipped:", "12", "s", "left"] and lines[4].split()[-1] == "-"
    assert lines[5] == "after install: 300 s (goal 480 s: met); install 40 s, model build 6 s"
    assert "goal 480 s: MISSED" in render(measurement(after_install=481.0), common.table)
    rehearsal = render(measurement(rehearsal=True), common.table).splitlines()
    assert rehearsal[0] == REHEARSAL_TITLE and "no goal on a rehearsal" in rehearsal[-1]
    broken = measurement()
    broken["runs"] = [failed({"name": "1.5b-full"}, "failed: model build (OutOfMemoryError: CUDA out of memory)")]
    assert render(broken, common.table).splitlines()[3].split()[:4] == ["1.5b-full", "failed:", "model", "build"]
