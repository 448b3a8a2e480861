"""``eval.after_training``: the trained model is scored beside its base model and the table goes into the card.

The run trains the tiny model on a reward it learns within a few steps (shorter completions are better: TRL
passes ``completion_ids``, and a sampled completion that stops early earns more), so the trained model's greedy
answers really differ from its base model's. The card's numbers and the saved results of both sides must then
equal what an independent ``reasoner eval`` of the same two models measures, and must differ from each other:
a report that scored the base model twice, or the trained model twice, fails here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from reasoner.eval.scoring import METRICS
from reasoner.recipe.load import load_recipe

LIMIT = 8
MAX_NEW_TOKENS = 16  # the recipe's max_completion_length, which the after-training evaluation generates up to

SHORTER_REWARD = '''
def shorter(completions, completion_ids, **kwargs):
    """Fewer completion tokens are better: a completion that ends early beats one cut at the length limit."""
    return [-float(len(ids)) for ids in completion_ids]
'''


def _recipe(folder: Path) -> Path:
    """tiny-cpu with only the length reward, eval after training on LIMIT held-out questions, and settings under
    which the tiny model learns to stop within five steps (8 completions a step, constant 3e-3, no KL term)."""
    (folder / "length_rewards.py").write_text(SHORTER_REWARD, encoding="utf-8")
    data = yaml.safe_load(Path(load_recipe("tiny-cpu").source).read_text(encoding="utf-8"))
    data["rewards"] = {"length_rewards.py:shorter": 1.0}
    data["eval"] = {"after_training": True, "split": "test", "limit": LIMIT}
    data["grpo"].update(learning_rate=3e-3, lr_scheduler_type="constant", warmup_steps=0, beta=0.0, max_steps=5,
                        num_generations=8, per_device_train_batch_size=8, save_strategy="no",
                        max_completion_length=MAX_NEW_TOKENS)
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _card_table(card: str) -> dict[str, tuple[str, str]]:
    """The evaluation section's rows: metric label -> (baseline cell, model cell)."""
    section = card.split("## Evaluation", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] not in ("metric", "---"):
            rows[cells[0]] = (cells[1], cells[2])
    return rows


def _cell(value: float, kind: str) -> str:
    return f"{100 * value:.1f}%" if kind == "rate" else f"{value:.1f}"


def _completions(folder: Path) -> list[str]:
    lines = (folder / "completions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["completion"] for line in lines]


def test_model_card_numbers_are_the_base_and_trained_models_own(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "reasoner.cli", "train", "--recipe", str(_recipe(tmp_path)), "--output_dir", str(out)],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    card = (out / "README.md").read_text()
    assert "## Evaluation" in card and "baseline" in card.lower()
    assert "strict accuracy" in card and "lenient accuracy" in card
    reported = {side: json.loads((out / "eval" / side / "results.json").read_text()) for side in ("base", "trained")}
    for saved in reported.values():
        assert saved["n"] == LIMIT and 0.0 <= saved["metrics"]["strict_accuracy"] <= 1.0

    # An independent evaluation of the same two models with the run's saved recipe (prompt, data, split, limit).
    checked = tmp_path / "check"
    result = subprocess.run(
        [sys.executable, "-m", "reasoner.cli", "eval", "--recipe", str(out / "recipe.yaml"), "--model", str(out),
         "--baseline", "tiny", "--max-new-tokens", str(MAX_NEW_TOKENS), "--output", str(checked)],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    independent = {"trained": json.loads((checked / "results.json").read_text()),
                   "base": json.loads((checked / "baseline" / "results.json").read_text())}
    for side in ("base", "trained"):
        assert reported[side]["settings"]["questions_sha256"] == independent[side]["settings"]["questions_sha256"]
        assert reported[side]["metrics"] == independent[side]["metrics"], side
    assert _completions(out / "eval" / "base") == _completions(checked / "baseline")
    assert _completions(out / "eval" / "trained") == _completions(checked)

    # The card shows those numbers, base in the baseline column and trained in the model column.
    rows = _card_table(card)
    for key, label, kind in METRICS:
        assert rows[label] == (_cell(independent["base"]["metrics"][key], kind),
                               _cell(independent["trained"]["metrics"][key], kind)), label

    # Training changed the answers: the trained model stops early where the base model runs to the limit.
    base, trained = (independent[side]["metrics"]["mean_completion_tokens"] for side in ("base", "trained"))
    assert trained < base - 4, f"mean completion length {base} (base) -> {trained} (trained)"
    assert _completions(out / "eval" / "base") != _completions(out / "eval" / "trained")
