"""Tracking: wandb (offline without a key) and tensorboard from a real run, and completion samples with rewards."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from reasoner.train.tracking import configure_tracking, report_targets


def test_wandb_goes_offline_without_a_key(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc login
    env: dict[str, str] = {}
    assert configure_tracking(["wandb", "tensorboard"], env) == ["wandb", "tensorboard"]
    assert env["WANDB_MODE"] == "offline" and env["WANDB_PROJECT"] == "reasoner"


def test_wandb_stays_online_with_a_key_or_a_private_server_login(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    env = {"WANDB_API_KEY": "x" * 40}
    configure_tracking("wandb", env)
    assert "WANDB_MODE" not in env
    (tmp_path / ".netrc").write_text("machine wandb.internal.example\n  login user\n  password secret\n")
    (tmp_path / ".netrc").chmod(0o600)
    env = {"WANDB_BASE_URL": "https://wandb.internal.example"}
    configure_tracking(["wandb"], env)
    assert "WANDB_MODE" not in env


def test_report_targets_forms():
    assert report_targets("none") == [] and report_targets(None) == []
    assert report_targets("wandb") == ["wandb"] and report_targets(["a", "b"]) == ["a", "b"]


def test_a_run_reports_to_tensorboard_and_wandb_with_completion_samples(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HOME=str(tmp_path), WANDB_DIR=str(tmp_path / "wandb-dir"))
    result = subprocess.run(
        [sys.executable, "-m", "reasoner.cli", "train", "--recipe", "tiny-cpu", "--max_steps", "2",
         "--report_to", "[tensorboard, wandb]", "--tracking.samples_every", "1", "--tracking.samples", "3",
         "--output_dir", str(out)], capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    samples = [json.loads(line) for line in (out / "completions.jsonl").read_text().splitlines()]
    assert [s["step"] for s in samples] == [1, 1, 1, 2, 2, 2]
    assert set(samples[0]["rewards"]) == {"xml_count", "soft_format", "strict_format", "integer", "correctness"}
    assert samples[0]["question"] and isinstance(samples[0]["completion"], str)

    runs = [p for p in (out / "runs").iterdir() if p.name != "completions"]
    scalars = EventAccumulator(str(runs[0])).Reload().Tags()["scalars"]
    assert "train/reward" in scalars and "train/rewards/correctness/mean" in scalars
    texts = EventAccumulator(str(out / "runs" / "completions"), size_guidance={"tensors": 0}).Reload().Tags()["tensors"]
    assert any("completions" in tag for tag in texts)

    offline_runs = list((tmp_path / "wandb-dir" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert offline_runs and offline_runs[0].stat().st_size > 0
