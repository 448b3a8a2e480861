"""``reasoner demo`` end to end on the tiny model: embedded hub, training through it, push, eval, report."""

from __future__ import annotations

import os
import subprocess
import sys


def test_demo_runs_the_whole_loop(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    result = subprocess.run(
        [sys.executable, "-m", "reasoner.cli", "demo", "--model", "tiny", "--max-steps", "2", "--eval-limit", "2",
         "--train-rows", "32", "--workdir", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    out = result.stdout
    bucket_model = tmp_path / "demo" / "hub" / "models" / "demo" / "tiny-qwen2-GRPO-gsm8k"
    assert f"in the bucket:            {bucket_model}" in out
    for name in ("config.json", "model.safetensors", "README.md"):
        assert (bucket_model / name).is_file(), name
    assert (bucket_model / "last-checkpoint" / "trainer_state.json").is_file()
    assert "== rewards ==" in out and "strict" in out
    assert "strict accuracy (answer tags)" in out  # the side-by-side evaluation table
    assert list((tmp_path / "demo" / "report").glob("*.png"))
    assert "final model pushed and verified" in result.stderr
    # Seeding the hub prints the demo's own line only, none of huggingface_hub's or datasets' progress bars.
    for bar in ("Creating parquet from Arrow format", "Uploading the dataset shards", "Processing Files", "New Data Upload"):
        assert bar not in result.stderr and bar not in out, bar
