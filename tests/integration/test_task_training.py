"""Bring your own task, end to end on CPU: the word-puzzle example (local JSONL, its own column names and
per-row system prompts, exact-string answers, a reward file of its own) trains the tiny model with real GRPO
steps, is evaluated after training into the model card, and ``reasoner eval`` asks the same questions the same
way. The MATH recipe's task (LaTeX answers) is evaluated on the MATH-style rows the tests ship."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "word-puzzles"
RECIPE = EXAMPLE / "recipe.yaml"
MATH_STYLE = ROOT / "tests" / "data" / "math-style"
CUSTOM = ("one_word_answer", "close_spelling")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def reasoner(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(HF_HOME=str(home), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1",
               PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "reasoner.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("puzzles")
    out = base / "out"
    result = reasoner("train", "--recipe", str(RECIPE), "--model.id", "tiny", "--max_steps", "4",
                      "--max_completion_length", "64", "--tracking.samples_every", "1", "--eval.after_training", "true",
                      "--eval.limit", "4", "--output_dir", str(out), home=base / "hf")
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return out


def test_the_custom_rewards_scored_every_step_and_training_moved_the_weights(run):
    steps = [r for r in read_jsonl(run / "metrics.jsonl") if "reward" in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4]
    for record in steps:
        for name in ("correctness", "strict_format", *CUSTOM):
            assert f"rewards/{name}/mean" in record, (name, sorted(record))
    assert any(record["reward_std"] > 0 for record in steps)  # some group had an advantage to learn from
    import torch
    from safetensors.torch import load_file

    from reasoner.models.tiny import ensure_tiny_model

    before = load_file(str(ensure_tiny_model() / "model.safetensors"))
    after = load_file(str(run / "model.safetensors"))
    assert any(not torch.equal(before[name], after[name]) for name in before)


def test_logged_rewards_are_what_the_reward_file_computes(run):
    spec = importlib.util.spec_from_file_location("puzzle_rewards", EXAMPLE / "rewards.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    gold = {row["puzzle"]: row["solution"] for row in read_jsonl(EXAMPLE / "train.jsonl")}
    samples = read_jsonl(run / "completions.jsonl")
    assert samples
    for sample in samples:
        assert sample["question"] in gold  # questions come from the puzzle column
        answer = [gold[sample["question"]]]
        assert sample["rewards"]["one_word_answer"] == module.one_word_answer([sample["completion"]])[0]
        assert sample["rewards"]["close_spelling"] == pytest.approx(
            module.close_spelling([sample["completion"]], answer=answer)[0])


def test_after_training_evaluation_follows_the_task(run):
    card = (run / "README.md").read_text(encoding="utf-8")
    assert "Accuracy (exact answers)" in card and "lenient accuracy (answer anywhere)" in card
    assert "answer format `exact`" in card
    test_rows = read_jsonl(EXAMPLE / "test.jsonl")
    for side in ("base", "trained"):
        saved = json.loads((run / "eval" / side / "results.json").read_text(encoding="utf-8"))
        assert saved["n"] == 4 and saved["settings"]["answer_format"] == ["exact"]
        lines = read_jsonl(run / "eval" / side / "completions.jsonl")
        assert [line["gold"] for line in lines] == [row["solution"] for row in test_rows[:4]]


def test_reasoner_eval_asks_the_same_questions_the_same_way(run, tmp_path):
    out = tmp_path / "eval"
    result = reasoner("eval", "--recipe", str(RECIPE), "--model", str(run), "--baseline", "tiny", "--limit", "5",
                      "--max-new-tokens", "8", "--output", str(out), home=tmp_path / "hf")
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "| lenient accuracy (answer anywhere) |" in result.stdout
    saved = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert saved["split"] == "test" and saved["n"] == 5
    assert saved["settings"]["answer_format"] == ["exact"] and saved["settings"]["compare_as"] == ["exact"]
    test_rows = read_jsonl(EXAMPLE / "test.jsonl")[:5]
    lines = read_jsonl(out / "completions.jsonl")
    assert [line["question"] for line in lines] == [row["puzzle"] for row in test_rows]
    assert [line["system"] for line in lines] == [row["instructions"] for row in test_rows]  # each row's own prompt
    assert [line["gold"] for line in lines] == [row["solution"] for row in test_rows]
    baseline = json.loads((out / "baseline" / "results.json").read_text(encoding="utf-8"))
    assert baseline["settings"]["questions_sha256"] == saved["settings"]["questions_sha256"]


def test_the_math_recipe_evaluates_latex_answers_with_math_verify(tmp_path):
    out = tmp_path / "math"
    result = reasoner("eval", "--recipe", "qwen2.5-1.5b-math", "--model", "tiny", "--data", str(MATH_STYLE),
                      "--limit", "6", "--max-new-tokens", "8", "--output", str(out), home=tmp_path / "hf")
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    saved = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert saved["settings"]["answer_format"] == ["math"] and saved["settings"]["compare_as"] == ["math"]
    assert saved["settings"]["system"].startswith("Solve the math problem step by step. Write your reasoning, then only")
    lines = read_jsonl(out / "completions.jsonl")
    assert [line["gold"] for line in lines[:3]] == [r"\frac{1}{2}", r"2\sqrt{2}", "5"]
