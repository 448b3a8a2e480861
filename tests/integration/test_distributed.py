"""Two real ranks on CPU: DDP, DeepSpeed ZeRO-2 and ZeRO-3 from the shipped accelerate configs.

Same seed, same data, same tiny model: the three strategies must end with the same weights (ZeRO only
changes where optimizer state, gradients and parameters live, not the arithmetic). ZeRO-3 runs with
``stage3_param_persistence_threshold: 0`` so even this tiny model is really partitioned, and its saved
model must be whole. Each run must also be ONE two-rank job: two ranks that each think they are
alone would agree with each other just as well, so the test checks that only rank zero logs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from ports import free_port

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ("cpu_ddp", "cpu_zero2", "cpu_zero3")
STEPS = 2


@pytest.fixture(scope="module")
def runs(tiny_model, tmp_path_factory) -> dict[str, tuple[Path, subprocess.CompletedProcess]]:
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("ACCELERATE_USE_CPU", None)
    results = {}
    for config in CONFIGS:
        out = tmp_path_factory.mktemp(config) / "out"
        command = [
            sys.executable, "-m", "accelerate.commands.accelerate_cli", "launch",
            "--config_file", f"accelerate_configs/{config}.yaml",
            "--main_process_port", str(free_port()),
            "-m", "reasoner.train", "--recipe", "tiny-cpu", "--model.id", str(tiny_model),
            "--max_steps", str(STEPS), "--output_dir", str(out),
        ]
        results[config] = out, subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    return results


def _ok(run: tuple[Path, subprocess.CompletedProcess]) -> Path:
    out, result = run
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return out


@pytest.mark.parametrize("config", CONFIGS)
def test_two_ranks_form_one_job(runs, config):
    _ok(runs[config])
    log = runs[config][1].stdout + runs[config][1].stderr
    for step in range(1, STEPS + 1):
        lines = [line for line in log.splitlines() if f"reasoner.train: step {step}/{STEPS}" in line]
        assert len(lines) == 1, (
            f"{len(lines)} ranks logged step {step} as the main process: the ranks did not join one "
            f"process group (a CPU run needs use_cpu for DDP and the gloo backend for DeepSpeed)"
        )


@pytest.mark.parametrize("config", CONFIGS)
def test_saved_model_is_whole_and_trained(runs, tiny_model, config):
    before = load_file(str(tiny_model / "model.safetensors"))
    after = load_file(str(_ok(runs[config]) / "model.safetensors"))
    assert set(before) <= set(after)
    for name, tensor in before.items():
        assert after[name].shape == tensor.shape, f"{name} saved as {tuple(after[name].shape)}: a shard, not whole"
    changed = [name for name in before if not torch.equal(before[name], after[name])]
    assert len(changed) >= len(before) // 2, f"only {len(changed)} of {len(before)} tensors changed"


def test_ddp_zero2_zero3_end_with_the_same_weights(runs, tiny_model):
    names = list(load_file(str(tiny_model / "model.safetensors")))
    weights = {config: load_file(str(_ok(runs[config]) / "model.safetensors")) for config in CONFIGS}
    reference = weights["cpu_ddp"]
    for config in ("cpu_zero2", "cpu_zero3"):
        for name in names:
            torch.testing.assert_close(weights[config][name], reference[name], atol=1e-5, rtol=1e-4,
                                       msg=lambda m, c=config, n=name: f"{c} vs cpu_ddp, {n}: {m}")
