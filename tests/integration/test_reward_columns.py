"""Every column of a row reaches every reward as a keyword (TRL's convention), beside ``answer`` and
``compare_as``: TRL's own ``accuracy_reward`` gets MATH's worked solution as ``solution`` and pays correct boxed
answers, and a reward file that needs extra columns (a difficulty, test cases) trains with real GRPO steps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from reasoner.data import prepare_dataset
from reasoner.data.mixture import mix_datasets
from reasoner.rewards import resolve_reward
from reasoner.rewards.trial import sample_batch, try_rewards

ROOT = Path(__file__).resolve().parents[2]
MATH_STYLE = ROOT / "tests" / "data" / "math-style"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def conversation(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def test_trl_accuracy_reward_pays_correct_boxed_answers_on_math_rows():
    from trl.rewards import accuracy_reward

    rows = read_jsonl(MATH_STYLE / "test.jsonl")
    prepared, stats = prepare_dataset(rows, question_column="problem", answer_column="solution", answer="math")
    assert stats.kept == len(rows) - 1  # the row without a boxed answer is dropped and counted
    assert prepared["solution"] == [row["solution"] for row in rows if "\\boxed" in row["solution"]]
    assert prepared["level"][0] == rows[0]["level"] and prepared["type"][0] == rows[0]["type"]
    reward = resolve_reward("accuracy_reward")
    batch = {name: prepared[name] for name in prepared.column_names if name != "prompt"}
    right = [conversation(f"Working.\n\\boxed{{{gold}}}") for gold in prepared["answer"]]
    wrong = [conversation("Working.\n\\boxed{123456789}") for _ in prepared["answer"]]
    assert reward(completions=right, **batch) == [1.0] * len(right)
    assert reward(completions=wrong, **batch) == [0.0] * len(wrong)
    # the same as TRL's own function called the way GRPOTrainer calls it with these columns
    assert accuracy_reward(completions=right, **batch) == [1.0] * len(right)


def test_every_column_reaches_the_trial_batch_and_gsm8k_solution_is_the_gold_answer():
    rows = [{"question": "What is 2 + 2?", "answer": "2 + 2 = 4\n#### 4", "difficulty": 1, "tests": ["4"]},
            {"question": "What is 3 + 3?", "answer": "#### 6", "difficulty": 2, "tests": ["6"]}]
    prepared, _ = prepare_dataset(rows)
    batch = sample_batch(prepared)
    assert batch["difficulty"] == [1, 1, 2, 2] and batch["tests"] == [["4"], ["4"], ["6"], ["6"]]
    assert batch["answer"] == ["4", "4", "6", "6"] and batch["solution"] == batch["answer"]
    assert batch["question"][0] == "What is 2 + 2?" and batch["compare_as"] == ["number"] * 4
    seen = {}

    def needs_difficulty(completions, difficulty, tests, **kwargs):
        seen.update(difficulty=difficulty, tests=tests)
        return [float(d) for d in difficulty]

    try_rewards([needs_difficulty], ["needs_difficulty"], prepared)
    assert seen["difficulty"] == [1, 1, 2, 2]


def test_a_mixture_keeps_each_sources_columns():
    math_rows = read_jsonl(MATH_STYLE / "train.jsonl")
    first, _ = prepare_dataset(math_rows, question_column="problem", answer_column="solution", answer="math")
    second, _ = prepare_dataset([{"question": "2+2?", "answer": "#### 4", "difficulty": 3}])
    mixed = mix_datasets([first, second], [1.0, 1.0], seed=1)
    assert len(mixed) == len(first) + 1
    by_question = {row["answer"]: row for row in mixed}
    assert by_question["4"]["difficulty"] == 3 and by_question["4"]["level"] is None
    math_row = next(row for row in mixed if row["compare_as"] == "math")
    assert math_row["difficulty"] is None and math_row["level"].startswith("Level")


REWARD_FILE = '''
def by_difficulty(completions, difficulty, answer, **kwargs):
    """Pays more on harder rows: needs the data set's own difficulty column."""
    return [float(level) * 0.1 if str(gold) in str(c) else 0.0 for c, level, gold in zip(completions, difficulty, answer)]
'''


def test_a_reward_file_that_needs_extra_columns_trains(tmp_path):
    rows = [{"question": f"What is {a} + {a}?", "answer": f"#### {2 * a}", "difficulty": a % 3 + 1} for a in range(1, 9)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    (tmp_path / "rewards.py").write_text(REWARD_FILE, encoding="utf-8")
    recipe = yaml.safe_load((ROOT / "reasoner" / "recipes" / "tiny-cpu.yaml").read_text(encoding="utf-8"))
    recipe["dataset"].update(id=str(tmp_path / "train.jsonl"), config=None)
    recipe["rewards"] = {"correctness": 1.0, "rewards.py:by_difficulty": 1.0}
    recipe["grpo"].update(output_dir=str(tmp_path / "out"), max_steps=2)
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1",
               PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-m", "reasoner.cli", "train", "--recipe", str(tmp_path / "recipe.yaml")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    steps = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    steps = [record for record in steps if "reward" in record]
    assert [record["step"] for record in steps] == [1, 2]
    assert all("rewards/by_difficulty/mean" in record for record in steps)
