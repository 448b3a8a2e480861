"""Two real ranks under DeepSpeed ZeRO-2 on CPU, stopped by a preemption signal and resumed, end bitwise where an
uninterrupted two-rank run ends.

A one-process resume proves little about a sharded run: under ZeRO-2 each rank holds only its partition of the
Adam moments and fp32 master weights, each rank has its own RNG state, and each rank draws its own slice of every
batch. The resumed run must put back all of them, on every rank, or the weights drift (the optimizer restarts
from zero moments, a rank's sampling RNG starts over, or a rank sees another slice of the data). So the two
runs must agree exactly: final weights, every rank's optimizer shard at the last step, the logged reward of
every step, and the step count.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from ports import free_port
from training_run import TrainingRun, rank_pids, step_records

ROOT = Path(__file__).resolve().parents[2]
STEPS = 4
PREEMPTED = 75


def run_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "ACCELERATE_"))}
    return {**env, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "DS_ACCELERATOR": "cpu",
            "PYTHONPATH": str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")}


class ZeroTwoRun(TrainingRun):
    """One two-rank ZeRO-2 job (the shipped CPU config) on the tiny model, output captured to a file."""

    def __init__(self, out: Path, model: Path) -> None:
        command = [sys.executable, "-m", "accelerate.commands.accelerate_cli", "launch", "--config_file",
                   "accelerate_configs/cpu_zero2.yaml", "--main_process_port", str(free_port()), "-m", "reasoner.train",
                   "--recipe", "tiny-cpu", "--model.id", str(model), "--max_steps", str(STEPS), "--save_steps", "100",
                   "--output_dir", str(out)]
        super().__init__(out, command, run_env())


@pytest.fixture(scope="module")
def runs(tiny_model, tmp_path_factory) -> dict[str, Any]:
    """Side by side: an uninterrupted run, and one whose ranks get SIGTERM after step 1, then the same command."""
    base = tmp_path_factory.mktemp("zero2-resume")
    reference = ZeroTwoRun(base / "reference", tiny_model)
    first = ZeroTwoRun(base / "interrupted", tiny_model)
    first.wait_for_step(1)
    ranks = rank_pids(first.process.pid)
    for pid in ranks.values():
        os.kill(pid, signal.SIGTERM)  # a scheduler's stop reaches every process of the job
    first_rc = first.wait()
    stopped = sorted(p.name for p in first.out.glob("checkpoint-*"))
    resumed = ZeroTwoRun(first.out, tiny_model) if len(stopped) == 1 else None
    second_rc = resumed.wait() if resumed else None
    reference_rc = reference.wait()
    return {"reference": reference, "reference_rc": reference_rc, "first": first, "first_rc": first_rc,
            "ranks": ranks, "stopped": stopped, "resumed": resumed, "second_rc": second_rc}


def _stopped_step(runs) -> int:
    assert set(runs["ranks"]) == {0, 1}, f"expected two training ranks under the launcher, found {runs['ranks']}"
    assert len(runs["stopped"]) == 1, (runs["stopped"], runs["first"].text()[-3000:])  # save_steps 100: only the stop's
    step = int(runs["stopped"][0].split("-")[1])
    assert 1 <= step < STEPS, f"stopped at step {step}: nothing left to resume"
    # Each rank exits with 75; accelerate's launcher reports that as 1 (reasoner.train.preempted).
    line = (f"saved {runs['first'].out / runs['stopped'][0]} after SIGTERM; exiting with {PREEMPTED} (a stop: the "
            "job does not requeue; run the same command again to resume)")
    assert runs["first_rc"] != 0 and runs["first"].text().count(line) == 2, runs["first"].text()[-3000:]
    return step


def _finished(runs) -> tuple[Path, Path]:
    assert runs["reference_rc"] == 0, runs["reference"].text()[-3000:]
    step = _stopped_step(runs)
    assert runs["second_rc"] == 0, runs["resumed"].text()[-3000:]
    assert f"resuming from {runs['first'].out / f'checkpoint-{step}'}" in runs["resumed"].text()
    return runs["reference"].out, runs["resumed"].out


def test_the_stop_saved_every_ranks_optimizer_shard(runs):
    step = _stopped_step(runs)
    folder = runs["first"].out / f"checkpoint-{step}"
    for rank in (0, 1):
        assert (folder / f"rng_state_{rank}.pth").is_file()
        assert (folder / f"global_step{step}" / f"zero_pp_rank_{rank}_mp_rank_00_optim_states.pt").is_file()
    assert json.loads((folder / "trainer_state.json").read_text())["global_step"] == step


def test_resumed_two_rank_weights_equal_the_uninterrupted_run_bitwise(runs):
    reference_out, resumed_out = _finished(runs)
    reference = load_file(str(reference_out / "model.safetensors"))
    resumed = load_file(str(resumed_out / "model.safetensors"))
    assert reference.keys() == resumed.keys()
    differing = [name for name in reference if not torch.equal(reference[name], resumed[name])]
    assert not differing, f"{len(differing)} of {len(reference)} tensors differ from the uninterrupted run, e.g. {differing[:3]}"


def _tensor_differences(a: Any, b: Any, where: str = "") -> list[str]:
    """Paths at which two loaded checkpoints differ: tensors bitwise, containers by key, numbers by value."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        same = isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
        return [] if same else [where]
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{where} keys"]
        return [d for key in a for d in _tensor_differences(a[key], b[key], f"{where}/{key}")]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return [f"{where} length"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _tensor_differences(x, y, f"{where}[{i}]")]
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return [] if a == b else [where]
    return []


def test_every_ranks_optimizer_shard_ends_where_the_uninterrupted_one_does(runs):
    """The Adam moments and fp32 partitions of both ranks at the last step, bitwise: a resume that restarted
    either rank's optimizer state could not match them."""
    reference_out, resumed_out = _finished(runs)
    for rank in (0, 1):
        name = f"checkpoint-{STEPS}/global_step{STEPS}/zero_pp_rank_{rank}_mp_rank_00_optim_states.pt"
        reference = torch.load(reference_out / name, map_location="cpu", weights_only=False)["optimizer_state_dict"]
        resumed = torch.load(resumed_out / name, map_location="cpu", weights_only=False)["optimizer_state_dict"]
        moments = reference["base_optimizer_state"]["state"]
        assert moments and all(torch.count_nonzero(s["exp_avg_sq"]) for s in moments.values())
        differing = _tensor_differences(reference, resumed)
        assert not differing, f"rank {rank}'s optimizer shard differs at {differing[:5]}"


def test_each_step_is_trained_once_with_the_same_rewards_and_step_state(runs):
    reference_out, resumed_out = _finished(runs)
    steps = [r["step"] for r in step_records(resumed_out)]
    assert steps == list(range(1, STEPS + 1)), steps
    assert [r["reward"] for r in step_records(resumed_out)] == [r["reward"] for r in step_records(reference_out)]
    assert [r["learning_rate"] for r in step_records(resumed_out)] == [r["learning_rate"] for r in step_records(reference_out)]
    state = json.loads((resumed_out / f"checkpoint-{STEPS}" / "trainer_state.json").read_text())
    assert state["global_step"] == STEPS
