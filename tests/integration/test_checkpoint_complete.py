"""A checkpoint is complete, resumable and pushed only once every rank's part is on disk.

Real two-rank launches on CPU (DDP and DeepSpeed ZeRO-2, the shipped accelerate configs) save checkpoints,
push them to the embedded hub, and are resumed; the rules themselves are also checked on folders laid out as
the Trainer lays them out.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_DISABLE_XET", "1")  # before huggingface_hub is imported: the hub speaks LFS

import pytest  # noqa: E402
from huggingface_hub import HfApi  # noqa: E402

from reasoner.train.checkpoints import RECORD, is_complete, missing_parts, rank_parts, write_record  # noqa: E402
from reasoner_hub.auth import Token  # noqa: E402
from reasoner_hub.server import HubServer  # noqa: E402
from reasoner.train.resume import newest_checkpoint  # noqa: E402
from ports import free_port

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "hf_checkpoint_write_0123456789abcdef"


def two_ranks(config: str, tiny_model: Path, out: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "accelerate.commands.accelerate_cli", "launch", "--config_file",
               f"accelerate_configs/{config}.yaml", "--main_process_port", str(free_port()), "-m", "reasoner.train",
               "--recipe", "tiny-cpu", "--model.id", str(tiny_model), "--output_dir", str(out), *extra]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "ACCELERATE_"))}
    return {**env, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1", "HF_HUB_DISABLE_XET": "1",
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p), **extra}


@pytest.fixture(scope="module")
def ddp_run(tiny_model, tmp_path_factory):
    """Two DDP ranks, a checkpoint every step, each pushed to an embedded hub."""
    base = tmp_path_factory.mktemp("ddp")
    with HubServer(base / "bucket", tokens=[Token("trainer", TOKEN, "write")]) as hub:
        env = base_env(HF_ENDPOINT=hub.url, HF_TOKEN=TOKEN, HF_HOME=str(base / "home"))
        out = base / "out"
        result = two_ranks("cpu_ddp", tiny_model, out, env, "--max_steps", "2", "--save_steps", "1",
                           "--hub.push", "true", "--hub.repo_id", "org/two-ranks", "--hub.push_checkpoints", "true")
        files = HfApi(endpoint=hub.url, token=TOKEN).list_repo_files("org/two-ranks") if result.returncode == 0 else []
    return {"out": out, "result": result, "hub_files": files, "env": env}


def test_every_checkpoint_of_two_ranks_is_recorded_after_both_parts(ddp_run):
    result = ddp_run["result"]
    assert result.returncode == 0, result.stderr[-3000:]
    for step in (1, 2):
        folder = ddp_run["out"] / f"checkpoint-{step}"
        record = json.loads((folder / RECORD).read_text())
        assert record["global_step"] == step and record["world_size"] == 2
        assert set(record["files"]) == {"rng_state_0.pth", "rng_state_1.pth"}
        # Written once rank zero had seen both ranks' parts: after each of them, never before.
        assert all((folder / RECORD).stat().st_mtime_ns >= (folder / name).stat().st_mtime_ns for name in record["files"])
        assert is_complete(folder)


def test_the_pushed_checkpoint_holds_every_ranks_part(ddp_run):
    assert ddp_run["result"].returncode == 0, ddp_run["result"].stderr[-3000:]
    files = set(ddp_run["hub_files"])
    for name in ("rng_state_0.pth", "rng_state_1.pth", RECORD, "trainer_state.json", "optimizer.pt"):
        assert f"last-checkpoint/{name}" in files, sorted(files)


def test_a_checkpoint_missing_one_ranks_part_is_passed_over_on_resume(ddp_run, tiny_model):
    assert ddp_run["result"].returncode == 0, ddp_run["result"].stderr[-3000:]
    out = ddp_run["out"]
    (out / "checkpoint-2" / "rng_state_1.pth").unlink()  # rank 1's part of the newest checkpoint is gone
    assert not is_complete(out / "checkpoint-2")
    env = {k: v for k, v in ddp_run["env"].items() if k not in ("HF_ENDPOINT", "HF_TOKEN")}
    resumed = two_ranks("cpu_ddp", tiny_model, out, {**env, "HF_HUB_OFFLINE": "1"}, "--max_steps", "3",
                        "--save_steps", "1")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = resumed.stdout + resumed.stderr
    assert f"passing over {out / 'checkpoint-2'}: a file its {RECORD} names is missing" in log
    assert f"resuming from {out / 'checkpoint-1'}" in log


def test_deepspeed_records_each_ranks_optimizer_shard(tiny_model, tmp_path):
    out = tmp_path / "out"
    result = two_ranks("cpu_zero2", tiny_model, out, base_env(HF_HUB_OFFLINE="1"), "--max_steps", "1", "--save_steps", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    folder = out / "checkpoint-1"
    files = json.loads((folder / RECORD).read_text())["files"]
    for rank in (0, 1):
        assert f"rng_state_{rank}.pth" in files
        assert any(f"zero_pp_rank_{rank}_" in name and name.endswith("optim_states.pt") for name in files), files
    assert is_complete(folder)
    shard = next(name for name in files if "zero_pp_rank_1_" in name)
    (folder / shard).unlink()
    assert not is_complete(folder)


# -- the rules, on folders laid out as the Trainer writes them ------------------------------------------------
def checkpoint(folder: Path, step: int, files: list[str]) -> Path:
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    for name in files:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"x")
    return folder


def test_rank_zeros_trainer_state_alone_does_not_make_a_checkpoint_complete(tmp_path):
    folder = checkpoint(tmp_path / "checkpoint-4", 4, ["model.safetensors", "optimizer.pt", "rng_state_0.pth"])
    assert not is_complete(folder)
    reports = [(0, "n0", rank_parts(folder, 0, 2)), (1, "n1", rank_parts(folder, 1, 2))]
    assert missing_parts(folder, reports, 2, model_only=False) == ["rank 1 on n1 wrote no RNG state"]
    (folder / "rng_state_1.pth").write_bytes(b"x")
    reports = [(0, "n0", rank_parts(folder, 0, 2)), (1, "n1", rank_parts(folder, 1, 2))]
    assert missing_parts(folder, reports, 2, model_only=False) == []
    write_record(folder, 4, 2, [p for _, _, parts in reports for p in parts])
    assert is_complete(folder)


def test_a_part_rank_zero_cannot_see_is_named_with_the_fix(tmp_path):
    folder = checkpoint(tmp_path / "checkpoint-1", 1, ["rng_state_0.pth"])
    problems = missing_parts(folder, [(0, "n0", ["rng_state_0.pth"]), (1, "n1", ["rng_state_1.pth"])], 2, model_only=False)
    assert problems == ["rank 1 on n1 wrote rng_state_1.pth, which rank 0 cannot see (put output_dir on a "
                        "filesystem every node shares)"]


def test_deepspeed_needs_each_ranks_optimizer_shard(tmp_path):
    folder = checkpoint(tmp_path / "checkpoint-1", 1, ["latest", "rng_state_0.pth", "rng_state_1.pth",
                                                       "global_step1/bf16_zero_pp_rank_0_mp_rank_00_optim_states.pt"])
    reports = [(rank, "n0", rank_parts(folder, rank, 2)) for rank in (0, 1)]
    assert missing_parts(folder, reports, 2, model_only=False) == ["rank 1 on n0 wrote no DeepSpeed optimizer shard"]


def test_one_process_checkpoints_without_a_record_stay_resumable(tmp_path):
    """A single process wrote trainer_state.json last, so it is proof enough (plain TRL checkpoints too)."""
    single = checkpoint(tmp_path / "run" / "checkpoint-3", 3, ["model.safetensors", "rng_state.pth"])
    multi = checkpoint(tmp_path / "run" / "checkpoint-5", 5, ["model.safetensors", "rng_state_0.pth", "rng_state_1.pth"])
    assert is_complete(single) and not is_complete(multi)
    assert newest_checkpoint(tmp_path / "run") == single


def test_a_record_for_another_step_does_not_count(tmp_path):
    folder = checkpoint(tmp_path / "checkpoint-6", 6, ["rng_state_0.pth", "rng_state_1.pth"])
    write_record(folder, 5, 2, ["rng_state_0.pth", "rng_state_1.pth"])
    assert not is_complete(folder)
