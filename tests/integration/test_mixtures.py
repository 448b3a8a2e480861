"""Several data sets mixed by weight: the proportions, determinism, each data set read with its own columns and
answer format, the recipe's validation of ``dataset.mix``, and evaluation on the same mixture."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml

from reasoner.data import mix_indices, prepare_task, task_questions
from reasoner.errors import UserError
from reasoner.recipe.load import load_recipe
from reasoner.tasks.spec import task_sources
from shared_data import GSM8K

ROOT = Path(__file__).resolve().parents[2]
MATH_STYLE = ROOT / "tests" / "data" / "math-style"
PUZZLES = ROOT / "examples" / "word-puzzles"
PROMPT = {"system": "default", "few_shot": []}  # the keyword arguments of a recipe's prompt section


@pytest.mark.parametrize("sizes, weights, expected", [
    ([100, 40], [1.0, 1.0], [100, 40]),
    ([100, 40], [0.5, 1.0], [50, 40]),
    ([100, 40], [0.25, 2.0], [25, 80]),
    ([10, 7, 3], [1.5, 1.0, 0.34], [15, 7, 1]),
])
def test_each_data_set_contributes_its_weight_times_its_size(sizes, weights, expected):
    mixed = mix_indices(sizes, weights, seed=3)
    counts = Counter(part for part, _ in mixed)
    assert [counts[i] for i in range(len(sizes))] == expected
    for part, size in enumerate(sizes):
        rows = Counter(row for p, row in mixed if p == part)
        assert all(0 <= row < size for row in rows)
        # a whole pass takes every row once before any row is taken twice
        assert max(rows.values(), default=0) - min(rows.values(), default=0) <= 1 or weights[part] < 1


def test_mixing_is_seeded_and_interleaves():
    first = mix_indices([50, 50], [1.0, 1.0], seed=1)
    assert first == mix_indices([50, 50], [1.0, 1.0], seed=1)
    assert first != mix_indices([50, 50], [1.0, 1.0], seed=2)
    assert [part for part, _ in first[:50]].count(1) > 10  # shuffled together, not one data set after the other
    half = mix_indices([50], [0.5], seed=1)
    assert len({row for _, row in half}) == 25  # a random half without repeats


@pytest.fixture
def mixture_recipe(tmp_path: Path) -> Path:
    data = yaml.safe_load(Path(load_recipe("tiny-cpu").source).read_text(encoding="utf-8"))
    data["dataset"]["mix"] = [
        {"id": str(GSM8K), "split": "test", "weight": 0.02, "eval_split": "test"},
        {"id": str(MATH_STYLE), "split": "train", "question_column": "problem", "answer_column": "solution",
         "answer": {"format": "math"}, "weight": 2.0},
        {"id": str(PUZZLES), "question_column": "puzzle", "answer_column": "solution", "system_column": "instructions",
         "answer": {"format": "exact"}, "weight": 0.5},
    ]
    path = tmp_path / "mix.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_a_recipe_mixture_is_prepared_source_by_source(mixture_recipe):
    recipe = load_recipe(str(mixture_recipe))
    sources = task_sources(recipe.dataset, recipe.answer)
    assert [s.answer.format_name for s in sources] == ["gsm8k", "math", "exact"]
    gsm8k_rows = sum(1 for line in (GSM8K / "test.jsonl").read_text().splitlines() if line.strip())
    prepared, total, per_source = prepare_task(sources, [s.id for s in sources], **PROMPT, seed=42)
    assert [part.kept for part in per_source] == [gsm8k_rows, 8, 120]
    kinds = Counter(prepared["compare_as"])
    assert kinds == {"number": round(0.02 * gsm8k_rows), "math": 16, "exact": 60}
    assert total.kept == gsm8k_rows + 8 + 120
    # every math row's gold answer is its solution's boxed answer; every puzzle row carries its own system prompt
    math_golds = {row["answer"] for row in prepared if row["compare_as"] == "math"}
    assert r"\frac{1}{2}" in math_golds and r"5\sqrt{2}" in math_golds
    puzzle_prompts = [row["prompt"] for row in prepared if row["compare_as"] == "exact"]
    assert all(p[0]["content"].startswith("Think briefly") for p in puzzle_prompts)
    again, _, _ = prepare_task(sources, [s.id for s in sources], **PROMPT, seed=42)
    assert again["answer"] == prepared["answer"]
    limited, _, _ = prepare_task(sources, [s.id for s in sources], **PROMPT, seed=42, limit=10)
    assert limited["answer"] == prepared["answer"][:10]


def test_evaluation_questions_of_a_mixture(mixture_recipe):
    recipe = load_recipe(str(mixture_recipe))
    sources = task_sources(recipe.dataset, recipe.answer)
    items, dropped = task_questions(sources, split="test", limit=30, seed=42)
    assert len(items) == 30
    kinds = Counter(item["compare_as"] for item in items)
    assert set(kinds) == {"number", "math", "exact"}
    assert dropped == 1  # the MATH-style test row without a boxed answer
    assert task_questions(sources, split="test", limit=30, seed=42)[0] == items


@pytest.mark.parametrize("entry, message", [
    ({"weight": 1.0}, r"dataset.mix\[0\] has no id"),
    ({"id": "x.jsonl", "weight": 0}, r"dataset.mix\[0\].weight must be a number above 0"),
    ({"id": "x.jsonl", "weight": "half"}, r"weight must be a number above 0"),
    ({"id": "x.jsonl", "wieght": 1}, r"unknown key 'wieght' in dataset.mix\[0\]: did you mean 'weight'\?"),
    ({"id": "x.jsonl", "answer": {"format": "regex"}}, "needs answer.pattern"),
    ({"id": "x.jsonl", "answer": {"fromat": "math"}}, r"unknown key 'fromat' in dataset.mix\[0\].answer"),
    ({"id": "x.jsonl", "limit": -3}, r"limit must be a positive number of rows"),
    ("x.jsonl", r"dataset.mix\[0\] must be a mapping"),
])
def test_bad_mixture_entries_are_one_line(entry, message, tmp_path):
    data = yaml.safe_load(Path(load_recipe("tiny-cpu").source).read_text(encoding="utf-8"))
    data["dataset"]["mix"] = [entry]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(UserError, match=message) as error:
        load_recipe(str(path))
    assert "\n" not in str(error.value)


def test_mixture_entries_override_on_the_command_line(tmp_path):
    mix = json.dumps([{"id": str(PUZZLES), "question_column": "puzzle", "answer_column": "solution",
                       "answer": {"format": "exact"}}])
    recipe = load_recipe("tiny-cpu", ["--dataset.mix", mix])
    assert [s.id for s in task_sources(recipe.dataset, recipe.answer)] == [str(PUZZLES)]


# --- a mixture of hub data sets, pinned once and trained on offline -----------------------------------------


def test_prefetch_pins_every_data_set_of_a_mixture_and_training_reads_them_offline(tmp_path):
    import os
    import subprocess
    import sys

    from huggingface_hub import HfApi, constants

    from reasoner_hub.server import HubServer

    constants.HF_HUB_DISABLE_XET = True
    data = yaml.safe_load(Path(load_recipe("tiny-cpu").source).read_text(encoding="utf-8"))
    data["dataset"]["mix"] = [
        {"id": "org/gsm8k-mini", "split": "train", "weight": 1.0},
        {"id": "org/math-mini", "split": "train", "question_column": "problem", "answer_column": "solution",
         "answer": {"format": "math"}, "weight": 2.0},
    ]
    recipe = tmp_path / "mix.yaml"
    recipe.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    gsm8k_rows = "".join(line + "\n" for line in (GSM8K / "train.jsonl").read_text().splitlines()[:12])
    with HubServer(tmp_path / "bucket") as server:
        api = HfApi(endpoint=server.url, token="hf_writer_token_for_tests")
        commits = {}
        for repo, content in (("org/gsm8k-mini", gsm8k_rows), ("org/math-mini", (MATH_STYLE / "train.jsonl").read_text())):
            api.create_repo(repo, repo_type="dataset")
            commits[repo] = api.upload_file(repo_id=repo, repo_type="dataset", path_or_fileobj=content.encode(),
                                            path_in_repo="train.jsonl").oid
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
        env.update(HF_ENDPOINT=server.url, HF_HUB_DISABLE_XET="1", HF_HOME=str(tmp_path / "hf"), NO_PROXY="*",
                   OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
        cli = [sys.executable, "-m", "reasoner.cli"]
        pins_file = tmp_path / "pins.txt"
        done = subprocess.run([*cli, "prefetch", "--recipe", str(recipe), "--pins-out", str(pins_file)], env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    pins = pins_file.read_text().split()
    assert pins[0] == "--dataset.mix" and len(pins) == 2  # one word for launchers' `read -ra`
    pinned = json.loads(pins[1])
    assert [entry["revision"] for entry in pinned] == [commits["org/gsm8k-mini"], commits["org/math-mini"]]
    # The hub is gone: training reads both pinned data sets from the node's cache.
    out = tmp_path / "out"
    env.update(HF_HUB_OFFLINE="1")
    done = subprocess.run([*cli, "train", "--recipe", str(recipe), *pins, "--max_steps", "1", "--output_dir", str(out)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    log = done.stdout + done.stderr
    assert "org/gsm8k-mini@" + commits["org/gsm8k-mini"] in log and "org/math-mini@" + commits["org/math-mini"] in log
    card = (out / "README.md").read_text(encoding="utf-8")
    assert f"`{commits['org/math-mini']}`" in card and "answer format `math`, weight 2" in card
