"""Evaluation: the pure scoring table, real generation with the tiny model on real GSM8K test rows,
the files it writes, determinism, the comparison tables and the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reasoner.data import SYSTEM_PROMPT, extract_gold
from reasoner.errors import UserError
from reasoner.eval import (
    COMPLETIONS_FILE,
    RESULTS_FILE,
    EvalResult,
    aggregate,
    compare,
    evaluate,
    is_saved_result,
    model_card_section,
    score_completion,
)
from reasoner.eval.cli import eval_main
from shared_data import GSM8K

TEST_ROWS = GSM8K / "test.jsonl"
LIMIT = 8
MAX_NEW_TOKENS = 24

STRICT_18 = "<reasoning>\n16 - 3 - 4 = 9 eggs are sold.\n9 * 2 = 18\n</reasoning>\n<answer>\n18\n</answer>\n"

# completion, gold, strict correct, lenient correct, format ok, extracted
SCORE_TABLE = [
    pytest.param(STRICT_18, "18", True, True, True, "18", id="correct-in-tags-strict-format"),
    pytest.param("She sells 9 eggs at $2 each, so she makes 9 * 2 = 18", "18", False, True, False, None,
                 id="correct-only-as-last-number"),
    pytest.param("Sure! <answer>18</answer>", "18", True, True, False, "18", id="correct-in-tags-loose-format"),
    pytest.param("<reasoning>\n16 - 3 = 13\n</reasoning>\n<answer>\n26\n</answer>\n", "18", False, False, True, "26",
                 id="wrong-in-strict-format"),
    pytest.param("<reasoning>\nThe house costs a lot.\n</reasoning>\n<answer>\n$1,000.00\n</answer>\n", "1000",
                 True, True, True, "$1,000.00", id="dollars-commas-decimals-equal-gold"),
    pytest.param("It is 18, no wait, it is 20", "18", False, False, False, None, id="no-tags-wrong-last-number"),
    pytest.param("<answer>18</answer> since 3 + 16 = 19", "18", True, False, False, "18",
                 id="right-in-tags-wrong-last-number"),
    pytest.param("<reasoning>\n9 * 2 = 18\n</reasoning>\n<answer>\n18", "18", False, True, False, None,
                 id="unclosed-answer-tag"),
    pytest.param("<reasoning>\nhalf of -5\n</reasoning>\n<answer>\n-2.50\n</answer>", "-2.5", True, True, True,
                 "-2.50", id="negative-decimal"),
    pytest.param("<answer>eighteen</answer>", "18", False, False, False, "eighteen", id="words-not-numbers"),
    pytest.param("", "18", False, False, False, None, id="empty"),
]


@pytest.mark.parametrize("completion, gold, strict, lenient, format_ok, extracted", SCORE_TABLE)
def test_score_completion_table(completion, gold, strict, lenient, format_ok, extracted):
    score = score_completion(completion, gold)
    assert score["strict_correct"] is strict
    assert score["lenient_correct"] is lenient
    assert score["format_ok"] is format_ok
    assert score["extracted"] == extracted


def test_aggregate_rates_and_lengths():
    scores = [score_completion(c, "18") for c in (STRICT_18, "so 18", "no idea", "<answer>18</answer>")]
    metrics = aggregate(scores, [10, 20, 30, 40])
    assert metrics == {
        "strict_accuracy": 0.5,
        "lenient_accuracy": 0.75,
        "format_rate": 0.25,
        "mean_completion_tokens": 25.0,
    }


# --------------------------------------------------------------------------------------------------
# Real generation


@pytest.fixture(scope="module")
def tiny_model() -> Path:
    from reasoner.models.tiny import ensure_tiny_model

    return ensure_tiny_model()


@pytest.fixture(scope="module")
def greedy_runs(tiny_model, tmp_path_factory) -> tuple[EvalResult, EvalResult]:
    assert TEST_ROWS.is_file(), f"the real GSM8K test rows are expected at {TEST_ROWS}"
    runs = []
    for name in ("first", "second"):
        runs.append(
            evaluate(
                str(tiny_model), split="test", limit=LIMIT, batch_size=4, data_source=str(TEST_ROWS),
                max_new_tokens=MAX_NEW_TOKENS, output_dir=tmp_path_factory.mktemp(name),
            )
        )
    return runs[0], runs[1]


def _lines(result: EvalResult) -> list[dict]:
    text = (result.output_dir / COMPLETIONS_FILE).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def test_metrics_are_rates_and_lengths(greedy_runs):
    result, _ = greedy_runs
    assert result.n == LIMIT
    for key in ("strict_accuracy", "lenient_accuracy", "format_rate"):
        assert 0.0 <= result.metrics[key] <= 1.0
    assert 0 < result.metrics["mean_completion_tokens"] <= MAX_NEW_TOKENS


def test_completions_file_has_one_line_per_question_in_order(greedy_runs):
    result, _ = greedy_runs
    lines = _lines(result)
    rows = [json.loads(line) for line in TEST_ROWS.read_text(encoding="utf-8").splitlines()[:LIMIT]]
    assert len(lines) == LIMIT
    assert [line["question"] for line in lines] == [row["question"] for row in rows]
    assert [line["gold"] for line in lines] == [extract_gold(row["answer"]) for row in rows]
    for line in lines:
        assert isinstance(line["completion"], str)
        assert 1 <= line["completion_tokens"] <= MAX_NEW_TOKENS
        # each line carries exactly the pure function's verdict on its own completion
        score = score_completion(line["completion"], line["gold"])
        assert {key: line[key] for key in score} == score
    # the summary is the aggregate of the lines
    assert aggregate(lines, [line["completion_tokens"] for line in lines]) == result.metrics


def test_results_json_records_what_was_evaluated(greedy_runs, tiny_model):
    result, _ = greedy_runs
    data = json.loads((result.output_dir / RESULTS_FILE).read_text(encoding="utf-8"))
    assert data["model"] == str(tiny_model)
    assert data["revision"] is None and data["commit"] is None  # a local folder has no hub commit
    assert data["split"] == "test" and data["n"] == LIMIT and data["dropped"] == 0
    assert set(data["metrics"]) == {"strict_accuracy", "lenient_accuracy", "format_rate", "mean_completion_tokens"}
    settings = data["settings"]
    assert settings["backend"] == "transformers" and settings["device"] == "cpu"
    assert settings["sampling"] is False and settings["max_new_tokens"] == MAX_NEW_TOKENS
    assert settings["system"] == SYSTEM_PROMPT and settings["few_shot"] == []
    assert data["started_at"] <= data["finished_at"]
    assert EvalResult.load(result.output_dir).metrics == result.metrics


def test_greedy_is_deterministic(greedy_runs):
    first, second = greedy_runs
    assert [line["completion"] for line in _lines(first)] == [line["completion"] for line in _lines(second)]
    assert first.metrics == second.metrics


def test_seeded_sampling_repeats_with_its_seed_and_changes_with_another(tiny_model, tmp_path):
    def sample(seed: int, name: str) -> list[str]:
        result = evaluate(
            str(tiny_model), limit=2, batch_size=2, data_source=str(TEST_ROWS), max_new_tokens=8,
            sampling=True, temperature=1.0, seed=seed, output_dir=tmp_path / name,
        )
        assert result.settings["sampling"] is True and result.settings["temperature"] == 1.0
        return [line["completion"] for line in _lines(result)]

    first = sample(1, "a")
    assert sample(1, "b") == first
    assert sample(2, "c") != first


def test_builtin_id_and_recipe_prompt_and_data(tmp_path, capsys):
    out = tmp_path / "recipe"
    code = eval_main(["--model", "tiny", "--recipe", "tiny-cpu", "--limit", "3", "--max-new-tokens", "8",
                      "--output", str(out)])
    assert code == 0
    data = json.loads((out / RESULTS_FILE).read_text(encoding="utf-8"))
    assert data["model"] == "tiny" and data["n"] == 3 and data["split"] == "test"
    assert data["settings"]["data_source"] == "generated"  # the recipe's data set
    assert data["settings"]["model_kind"] == "builtin"
    assert data["settings"]["system"] == SYSTEM_PROMPT
    assert len((out / COMPLETIONS_FILE).read_text(encoding="utf-8").splitlines()) == 3
    assert "| strict accuracy (answer tags) |" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------------
# Tables


def _result(model: str, strict: float, lenient: float, fmt: float, tokens: float, n: int = 200, commit=None) -> EvalResult:
    return EvalResult(
        model=model, revision="main" if commit else None, commit=commit, split="test", n=n,
        metrics={"strict_accuracy": strict, "lenient_accuracy": lenient, "format_rate": fmt,
                 "mean_completion_tokens": tokens},
        settings={"data_source": "openai/gsm8k", "sampling": False, "max_new_tokens": 256},
    )


def test_compare_is_a_side_by_side_markdown_table():
    base = _result("Qwen/Qwen2.5-0.5B-Instruct", 0.125, 0.40, 0.05, 180.0, commit="a" * 40)
    new = _result("org/Qwen-0.5B-GRPO", 0.375, 0.45, 0.90, 120.5)
    table = compare(new, base).splitlines()
    assert table[0] == "| metric | baseline: Qwen/Qwen2.5-0.5B-Instruct@aaaaaaaa | model: org/Qwen-0.5B-GRPO | change |"
    assert table[1] == "|---|---:|---:|---:|"
    assert table[2] == "| strict accuracy (answer tags) | 12.5% | 37.5% | +25.0 pts |"
    assert table[3] == "| lenient accuracy (last number) | 40.0% | 45.0% | +5.0 pts |"
    assert table[4] == "| strict format | 5.0% | 90.0% | +85.0 pts |"
    assert table[5] == "| mean completion length (tokens) | 180.0 | 120.5 | -59.5 |"
    assert len(table) == 6


def test_compare_notes_different_question_sets():
    text = compare(_result("a", 0.5, 0.5, 0.5, 10, n=100), _result("b", 0.5, 0.5, 0.5, 10, n=200))
    assert "not the same questions" in text and "+0.0 pts" in text


def test_same_questions_by_fingerprint_else_by_the_folder_a_path_names(tmp_path, monkeypatch):
    from reasoner.eval.results import questions_fingerprint, same_questions

    rows = [{"question": "2+2?", "gold": "4"}, {"question": "3+3?", "gold": "6"}]
    one = {"data_source": "a", "questions_sha256": questions_fingerprint(rows)}
    assert same_questions(one, {"data_source": "b", "questions_sha256": questions_fingerprint(rows)})
    assert not same_questions(one, {"data_source": "a", "questions_sha256": questions_fingerprint(rows[::-1])})
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path / "data")
    assert same_questions({"data_source": "../data"}, {"data_source": str(tmp_path / "data")})
    assert not same_questions({"data_source": "../data"}, {"data_source": "openai/gsm8k"})
    other = _result("b", 0.5, 0.5, 0.5, 10)
    other.settings["data_source"] = "other/set"
    assert "different data sets" in compare(_result("a", 0.5, 0.5, 0.5, 10), other)
    assert "different data sets" not in compare(_result("a", 0.5, 0.5, 0.5, 10), _result("b", 0.5, 0.5, 0.5, 10))


def test_model_card_section_describes_the_setting():
    new = _result("org/m", 0.3, 0.4, 0.5, 100)
    alone = model_card_section(new)
    assert "200 questions of `openai/gsm8k` split `test`, greedy decoding, at most 256 new tokens" in alone
    assert "| strict accuracy (answer tags) | 30.0% |" in alone
    both = model_card_section(new, _result("org/base", 0.1, 0.2, 0.0, 150))
    assert "| strict accuracy (answer tags) | 10.0% | 30.0% | +20.0 pts |" in both


# --------------------------------------------------------------------------------------------------
# Command line


def test_cli_with_a_baseline_model_and_a_saved_baseline(tiny_model, greedy_runs, tmp_path, capsys):
    out = tmp_path / "cli"
    common = ["--model", str(tiny_model), "--data", str(TEST_ROWS), "--limit", "2", "--batch-size", "2",
              "--max-new-tokens", "6"]
    assert eval_main([*common, "--baseline", "tiny", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| metric | baseline: tiny | model: " in printed
    assert (out / "baseline" / RESULTS_FILE).is_file() and (out / RESULTS_FILE).is_file()
    assert (out / "comparison.md").read_text(encoding="utf-8").startswith("| metric | baseline: tiny |")

    saved = greedy_runs[0].output_dir
    assert is_saved_result(saved) and is_saved_result(saved / RESULTS_FILE) and not is_saved_result(tiny_model)
    assert eval_main([*common, "--baseline", str(saved), "--output", str(tmp_path / "cli2")]) == 0
    printed = capsys.readouterr().out
    assert "not the same questions" in printed  # 8 saved questions against 2 new ones


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--model", "/no/such/model/folder"], "does not exist"),
        (["--model", "tiny", "--limit", "0"], "--limit must be a positive"),
        (["--model", str(GSM8K)], "holds no config.json"),
        (["--model", "tiny", "--backend", "vllm", "--device", "cpu"], "vllm backend needs"),
        (["--model", "tiny", "--data", "/no/such/rows.jsonl"], "not found"),
    ],
)
def test_cli_user_errors_are_one_line_and_exit_2(extra, message, tmp_path, capsys):
    from reasoner.cli import main

    assert main(["eval", *extra, "--output", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not (tmp_path / "x" / RESULTS_FILE).exists()


def test_loading_a_broken_results_file_is_a_user_error(tmp_path):
    bad = tmp_path / RESULTS_FILE
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(UserError, match="cannot read evaluation results"):
        EvalResult.load(tmp_path)


# --------------------------------------------------------------------------------------------------
# Backends


def test_auto_backend_is_transformers_without_a_gpu():
    from reasoner.eval.models import resolve_backend

    assert resolve_backend("auto", "cpu") == "transformers"
    assert resolve_backend("transformers", "cpu") == "transformers"
    with pytest.raises(UserError, match="unknown backend"):
        resolve_backend("onnx", "cpu")


def test_vllm_arguments_match_the_transformers_decoding():
    from reasoner.eval.generation import vllm_arguments
    from reasoner.eval.models import ModelRef

    ref = ModelRef(id="org/m", kind="hub", load="org/m", revision="main", commit="c" * 40)
    llm, params = vllm_arguments(ref, max_new_tokens=200, sampling=False, temperature=0.7, seed=3,
                                 stop_token_ids=[7, 9])
    assert llm == {"model": "org/m", "revision": "c" * 40, "tokenizer_revision": "c" * 40, "seed": 3,
                   "generation_config": "vllm"}
    assert params == {"max_tokens": 200, "temperature": 0.0, "top_p": 1.0, "top_k": -1, "seed": None,
                      "stop_token_ids": [7, 9]}
    _, sampled = vllm_arguments(ref, max_new_tokens=8, sampling=True, temperature=0.7, seed=3, stop_token_ids=[])
    assert sampled["temperature"] == 0.7 and sampled["seed"] == 3 and "stop_token_ids" not in sampled


# --------------------------------------------------------------------------------------------------
# A model on a hub, over HTTP


def test_hub_model_is_pinned_to_the_commit_of_its_revision(tiny_model, tmp_path, monkeypatch):
    """The embedded hub serves the tiny model; ``reasoner eval`` runs as a user runs it (HF_ENDPOINT set),
    loads it through the hub, and records the commit its revision pointed at."""
    import os
    import subprocess
    import sys

    from huggingface_hub import HfApi, constants

    from reasoner_hub.server import HubServer

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    with HubServer(tmp_path / "bucket") as hub:
        api = HfApi(endpoint=hub.url, token="hf_writer_token_for_tests")
        repo = "org/tiny-eval"
        api.create_repo(repo)
        first = api.upload_folder(repo_id=repo, folder_path=str(tiny_model), commit_message="model").oid
        api.upload_file(repo_id=repo, path_or_fileobj=b"# tiny\n", path_in_repo="README.md")
        head = api.repo_info(repo).sha
        assert head != first

        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
        env.update(HF_ENDPOINT=hub.url, HF_HUB_DISABLE_XET="1", HF_HOME=str(tmp_path / "hf"), NO_PROXY="*")

        def run(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                [sys.executable, "-m", "reasoner.cli", "eval", "--data", str(TEST_ROWS), "--limit", "2",
                 "--max-new-tokens", "4", *args],
                env=env, capture_output=True, text=True, timeout=300,
            )

        done = run("--model", repo, "--revision", first, "--baseline", repo, "--output", str(tmp_path / "out"))
        assert done.returncode == 0, done.stderr[-3000:]
        pinned = json.loads((tmp_path / "out" / RESULTS_FILE).read_text(encoding="utf-8"))
        latest = json.loads((tmp_path / "out" / "baseline" / RESULTS_FILE).read_text(encoding="utf-8"))
        assert (pinned["revision"], pinned["commit"]) == (first, first)
        assert (latest["revision"], latest["commit"]) == (None, head)
        assert pinned["settings"]["model_kind"] == "hub" and pinned["n"] == 2
        assert f"baseline: {repo}@{head[:8]}" in done.stdout

        missing = run("--model", "org/no-such-model", "--output", str(tmp_path / "missing"))
        assert missing.returncode == 2
        assert missing.stderr.strip().splitlines()[-1].startswith("error: model 'org/no-such-model' not found")
