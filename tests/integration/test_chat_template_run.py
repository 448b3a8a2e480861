"""A recipe's chat template is what training renders prompts with, what the trained model keeps, and what
``reasoner eval --recipe`` asks with."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from reasoner.models.tiny import CHAT_TEMPLATE

ROOT = Path(__file__).resolve().parents[2]
OURS = "{{ 'Q&A session.\\n' }}" + CHAT_TEMPLATE
RAISES = "{{ raise_exception('the recipe template was rendered') }}"


def train(tiny_model: Path, tmp_path: Path, template: str, name: str) -> tuple[subprocess.CompletedProcess, Path]:
    recipe = tmp_path / f"{name}.yaml"
    recipe.write_text(yaml.safe_dump({"base": "tiny-cpu", "prompt": {"chat_template": template}}))
    out = tmp_path / name
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-m", "reasoner.cli", "train", "--recipe", str(recipe), "--model.id",
                             str(tiny_model), "--max_steps", "1", "--output_dir", str(out)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    return result, out


def test_training_renders_with_the_recipes_template_and_the_model_keeps_it(tiny_model, tmp_path):
    failed, _ = train(tiny_model, tmp_path, RAISES, "raises")
    assert failed.returncode != 0 and "the recipe template was rendered" in failed.stderr, failed.stderr[-3000:]

    result, out = train(tiny_model, tmp_path, OURS, "ours")
    assert result.returncode == 0, result.stderr[-3000:]
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(str(out)).chat_template == OURS
    assert yaml.safe_load((out / "recipe.yaml").read_text())["prompt"]["chat_template"] == OURS

    evaluated = tmp_path / "eval"
    done = subprocess.run([sys.executable, "-m", "reasoner.cli", "eval", "--model", str(tiny_model), "--recipe",
                           str(out / "recipe.yaml"), "--limit", "2", "--max-new-tokens", "4", "--output",
                           str(evaluated)], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((evaluated / "results.json").read_text())["settings"]["chat_template"] == "the recipe's"
