"""The local cluster really schedules across its two nodes (the ground the sbatch test stands on)."""

from __future__ import annotations

import subprocess

import pytest

pytestmark = pytest.mark.slurm


def test_two_nodes_idle_and_a_job_spans_both(slurm_cluster, tmp_path):
    nodes = subprocess.run(["sinfo", "-h", "-N", "-o", "%N"], capture_output=True, text=True, timeout=30).stdout.split()
    assert sorted(set(nodes)) == ["n1", "n2"]
    out = subprocess.run(
        ["srun", "--nodes=2", "--ntasks-per-node=1", "bash", "-c", 'echo "$SLURM_NODEID $SLURMD_NODENAME"'],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert sorted(out.stdout.split("\n")[:2]) == ["0 n1", "1 n2"]


def _plan_in_job(launcher: list[str], script: str, cwd) -> dict[str, str]:
    """Run `reasoner plan --format env` inside a real allocation and read its variables."""
    import os
    import shlex
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env = {k: v for k, v in env.items() if not k.startswith(("REASONER_", "CUDA_VISIBLE"))}
    command = script.replace("PYTHON", shlex.quote(sys.executable))
    out = subprocess.run([*launcher, "bash", "-c", command], capture_output=True, text=True,
                         timeout=180, cwd=cwd, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


def test_one_gpu_node_plan_reads_slurms_gpus(slurm_cluster, tmp_path):
    """`--gres=gpu:4` on one node with a server asked for (left to it, the planner colocates): the plan finds 4 GPUs
    and splits them 1 (vLLM) + 3 (training)."""
    plan = _plan_in_job(["srun", "--nodes=1", "--gres=gpu:4"],
                        "PYTHON -m reasoner.cli plan --recipe qwen2.5-0.5b-gsm8k --generation.placement dedicated-gpu "
                        "--format env", tmp_path)
    assert plan["REASONER_GPUS_PER_NODE"] == "4"
    assert plan["REASONER_PLACEMENT"] == "dedicated-gpu"
    assert plan["REASONER_VLLM_CUDA_VISIBLE_DEVICES"] == "0"
    assert plan["REASONER_TRAIN_CUDA_VISIBLE_DEVICES"] == "1,2,3"
    assert plan["REASONER_NUM_PROCESSES"] == "3"


def test_two_gpu_nodes_plan_a_generation_node(slurm_cluster, tmp_path):
    """Two nodes and a generation node asked for (the planner never picks one itself): the last serves generation,
    the first trains; addresses come from NodeAddr."""
    script = (
        'export REASONER_NODELIST="$(scontrol show hostnames "$SLURM_JOB_NODELIST")"; '
        'export REASONER_NODE_ADDRS="$(for n in $REASONER_NODELIST; do scontrol show node "$n" '
        '| sed -n "s/.*NodeAddr=\\([^ ]*\\).*/\\1/p"; done)"; '
        "PYTHON -m reasoner.cli plan --recipe qwen2.5-0.5b-gsm8k --generation.placement dedicated-node --format env"
    )
    # The plan runs once, on the first node of a two-node allocation, as in slurm/grpo.sbatch.
    plan = _plan_in_job(["salloc", "--nodes=2", "--gres=gpu:4", "srun", "--nodes=1", "--ntasks=1"], script, tmp_path)
    assert plan["REASONER_PLACEMENT"] == "dedicated-node"
    assert plan["REASONER_VLLM_NODE"] == "n2" and plan["REASONER_VLLM_HOST"] == "127.0.0.1"
    assert plan["REASONER_TRAIN_NODES"] == "n1" and plan["REASONER_NUM_PROCESSES"] == "4"
    assert plan["REASONER_MAIN_IP"] == "127.0.0.1"
    assert plan["REASONER_MACHINE_RANK"] == "0"


def _launch_env_in_job(allocation: list[str], tmp_path) -> dict[str, list[str]]:
    """Both passes of `reasoner launch-env slurm` inside a real allocation: every variable, arrays as lists."""
    import os
    import sys
    from pathlib import Path

    from script_vars import read_assignments

    root = Path(__file__).resolve().parents[3]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REASONER_", "CUDA_VISIBLE", "HF_"))}
    env.update(PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""), HF_HUB_OFFLINE="1",
               REASONER_LOG_DIR=str(tmp_path / "logs"), REASONER_CACHE_DIR=str(tmp_path / "cache-{node}"))
    (tmp_path / "pins.txt").write_text("\n")
    py = sys.executable
    script = (f"{py} -m reasoner.cli launch-env slurm --check tiny-cpu && "
              f"{py} -m reasoner.cli launch-env slurm --pins {tmp_path}/pins.txt tiny-cpu 2>/dev/null")
    out = subprocess.run([*allocation, "bash", "-c", script], capture_output=True, text=True, timeout=300,
                         cwd=root, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    return read_assignments(out.stdout)


def test_launch_env_prints_what_the_batch_script_reads_and_the_gpus_the_job_asked_for(slurm_cluster, tmp_path):
    """--exclusive shows a job every GPU of its nodes, but its steps get only what it asked for: the plan follows
    the request (none here: CPU nodes), and every variable grpo.sbatch reads comes from launch-env."""
    from pathlib import Path

    from script_vars import script_reads

    sbatch = Path(__file__).resolve().parents[3] / "slurm" / "grpo.sbatch"
    cpu = _launch_env_in_job(["salloc", "--nodes=2", "--exclusive", "srun", "--nodes=1", "--ntasks=1"], tmp_path)
    from_outside = {"SLURM_JOB_ID", "SLURM_SUBMIT_DIR", "SLURM_RESTART_COUNT", "SLURM_JOB_NODELIST", "PWD",
                    "REASONER_ROOT", "REASONER_PYTHON"}
    # exported for the batch node's own reasoner commands and the steps (NO_PROXY: reasoner.launch.noproxy)
    for_children = {"HF_HUB_CACHE", "HF_DATASETS_CACHE", "NO_PROXY"}
    assert script_reads(sbatch) - from_outside == set(cpu) - for_children
    assert cpu["NODE_COUNT"] == ["2"] and cpu["CPUS_PER_TASK"] == ["2"]  # the exclusive node's CPUs
    args = cpu["TRAIN_NODE_ARGS"]
    assert args[args.index("--num_processes") + 1] == "2"  # one CPU process per node: no GPU was asked for
    assert args[args.index("--training-nodes") + 1] == "n1,n2"
    assert cpu["HF_HUB_CACHE"] == [str(tmp_path / "cache-n1" / "hub")]  # the batch node's own cache
    assert cpu["PREEMPT_MARKER"][0].endswith(".json") and cpu["PREEMPT_GRACE"] == ["100"]
    gpus = _launch_env_in_job(["salloc", "--nodes=2", "--exclusive", "--gres=gpu:2", "srun", "--nodes=1",
                               "--ntasks=1"], tmp_path)
    args = gpus["TRAIN_NODE_ARGS"]
    assert args[args.index("--num_processes") + 1] == "4"  # 2 GPUs per node asked for (4 visible): 2 x 2 ranks
