"""``eval.after_training``: the trained model is scored beside its base model and the table goes into the card."""

from __future__ import annotations

import json
import subprocess
import sys


def test_model_card_holds_trained_and_base_numbers(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "reasoner.cli", "train", "--recipe", "tiny-cpu", "--max_steps", "1",
         "--eval.after_training", "true", "--eval.limit", "3", "--output_dir", str(out)],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    card = (out / "README.md").read_text()
    assert "## Evaluation" in card
    assert "strict accuracy" in card and "lenient accuracy" in card
    for side in ("base", "trained"):
        saved = json.loads((out / "eval" / side / "results.json").read_text())
        assert saved["n"] == 3 and 0.0 <= saved["metrics"]["strict_accuracy"] <= 1.0
    assert "baseline" in card.lower()
