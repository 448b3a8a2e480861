"""``reasoner eval --samples K``: pass@1 as the mean over K samples with its standard error, unbiased pass@K and
maj@K, per task and overall, in results.json, the printed table and the model card; greedy stays the default;
the recipe supplies temperature, top_p and the completion length. Real generation with the tiny model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from reasoner.eval.cli import eval_main, recipe_settings
from reasoner.eval.results import COMPLETIONS_FILE, RESULTS_FILE, EvalResult
from reasoner.eval.sampling import majority_answer, pass_at_k, sampled_metrics
from reasoner.eval.tables import model_card_section, single_table
from reasoner.recipe.load import load_recipe

ROOT = Path(__file__).resolve().parents[2]
MATH_STYLE = ROOT / "tests" / "data" / "math-style"


def test_pass_at_k_is_the_unbiased_estimator():
    assert pass_at_k(4, 0, 4) == 0.0 and pass_at_k(4, 1, 4) == 1.0
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(10, 3, 2) == pytest.approx(1 - math.comb(7, 2) / math.comb(10, 2))
    with pytest.raises(ValueError):
        pass_at_k(2, 1, 3)


def test_majority_vote_groups_answers_by_the_tasks_comparison():
    assert majority_answer(["1,000", "1000.0", "7", None, None], "number") in ("1,000", "1000.0")
    assert majority_answer(["\\frac{1}{2}", "0.5", "3"], "math") == "\\frac{1}{2}"
    assert majority_answer(["(B)", "B", "A"], "choice") == "(B)"
    assert majority_answer([None, None], "number") is None


def test_sampled_metrics_by_hand():
    def group(gold, answers):
        return [{"gold": gold, "compare_as": "number", "extracted": a, "strict_correct": a == gold} for a in answers]

    groups = [group("4", ["4", "4", "5", None]), group("6", ["5", "5", "6", "1"]), group("2", ["3", "3", "3", "3"])]
    metrics = sampled_metrics(groups, 4)
    per_question = [0.5, 0.25, 0.0]
    mean = sum(per_question) / 3
    stderr = math.sqrt(sum((p - mean) ** 2 for p in per_question) / 2 / 3)
    assert metrics["pass@1"] == pytest.approx(mean) and metrics["pass@1_stderr"] == pytest.approx(stderr)
    assert metrics["pass@4"] == pytest.approx(2 / 3)  # two of three questions have a correct sample
    assert metrics["maj@4"] == pytest.approx(1 / 3)  # only the first question's majority answer is right


@pytest.fixture(scope="module")
def sampled(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sampled")
    code = eval_main(["--model", "tiny", "--recipe", "tiny-cpu", "--limit", "3", "--samples", "4", "--max-new-tokens",
                      "8", "--temperature", "1.0", "--top-p", "0.9", "--seed", "5", "--output", str(out)])
    assert code == 0
    return out


def test_samples_write_pass_and_majority_metrics(sampled, capsys):
    data = json.loads((sampled / RESULTS_FILE).read_text(encoding="utf-8"))
    metrics = data["metrics"]
    assert {"pass@1", "pass@1_stderr", "pass@4", "maj@4"} <= set(metrics)
    assert data["settings"]["samples"] == 4 and data["settings"]["sampling"] is True
    assert data["settings"]["temperature"] == 1.0 and data["settings"]["top_p"] == 0.9
    assert data["n"] == 3 and set(data["per_task"]) == {"generated"}
    lines = [json.loads(line) for line in (sampled / COMPLETIONS_FILE).read_text().splitlines()]
    assert len(lines) == 12 and [line["sample"] for line in lines[:4]] == [0, 1, 2, 3]
    assert [line["index"] for line in lines] == [0] * 4 + [1] * 4 + [2] * 4
    assert len({line["completion"] for line in lines}) > 3  # sampled, not four copies of one greedy answer
    correct = [sum(line["strict_correct"] for line in lines[i : i + 4]) / 4 for i in range(0, 12, 4)]
    assert metrics["pass@1"] == pytest.approx(sum(correct) / 3)
    assert metrics["strict_accuracy"] == pytest.approx(metrics["pass@1"])
    result = EvalResult.load(sampled)
    table = single_table(result)
    assert "| pass@1, mean of 4 samples |" in table and "| pass@4 |" in table and "| maj@4 (majority vote) |" in table
    assert "4 samples per question" in model_card_section(result) and "pass@4" in model_card_section(result)


def test_greedy_stays_the_default(tmp_path):
    out = tmp_path / "greedy"
    assert eval_main(["--model", "tiny", "--recipe", "tiny-cpu", "--limit", "2", "--output", str(out)]) == 0
    data = json.loads((out / RESULTS_FILE).read_text(encoding="utf-8"))
    assert data["settings"]["sampling"] is False and data["settings"]["samples"] == 1
    assert "pass@1" not in data["metrics"]
    # the completion length comes from the recipe (tiny-cpu trains with max_completion_length 16), not 256
    assert data["settings"]["max_new_tokens"] == 16


def test_the_recipe_supplies_samples_temperature_and_top_p(tmp_path):
    data = yaml.safe_load((ROOT / "reasoner" / "recipes" / "tiny-cpu.yaml").read_text(encoding="utf-8"))
    data["eval"].update(samples=8, top_p=0.95, max_new_tokens=64)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    settings = recipe_settings(load_recipe(str(path)))
    assert settings["samples"] == 8 and settings["top_p"] == 0.95 and settings["max_new_tokens"] == 64
    assert settings["temperature"] == 1.0  # eval.temperature unset: the training temperature


@pytest.mark.parametrize("extra, message", [
    (["--samples", "0"], "--samples must be 1 or more"),
    (["--samples", "2", "--top-p", "1.5"], "--top-p must be above 0 and at most 1"),
])
def test_bad_sampling_flags_are_one_line(extra, message, tmp_path, capsys):
    from reasoner.cli import run_guarded

    code = run_guarded(lambda: eval_main(["--model", "tiny", "--recipe", "tiny-cpu", "--limit", "1",
                                          "--output", str(tmp_path / "x"), *extra]))
    assert code == 2 and message in capsys.readouterr().err
