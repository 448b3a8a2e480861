"""Answer formats on real rows: GSM8K (the shared copy), the MATH-style and multiple-choice rows the tests ship,
and the word-puzzle example; math-verify equivalences; the correctness reward and evaluation scoring per row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reasoner.data import extract_gold, load_rows, prepare_dataset
from reasoner.errors import UserError
from reasoner.eval.scoring import score_completion
from reasoner.rewards import correctness
from reasoner.tasks.compare import comparison
from reasoner.tasks.formats import FORMATS, answer_format
from reasoner.tasks.latex import math_equal
from reasoner.tasks.numeric import parse_number
from shared_data import GSM8K

ROOT = Path(__file__).resolve().parents[2]
MATH_STYLE = ROOT / "tests" / "data" / "math-style"
CHOICE = ROOT / "tests" / "data" / "choice" / "test.jsonl"
PUZZLES = ROOT / "examples" / "word-puzzles"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def tagged(answer: str) -> str:
    return f"<reasoning>\nworked out\n</reasoning>\n<answer>\n{answer}\n</answer>\n"


@pytest.fixture(scope="module")
def gsm8k_test() -> list[dict]:
    assert (GSM8K / "test.jsonl").is_file(), f"the real GSM8K rows are expected at {GSM8K}"
    return read_jsonl(GSM8K / "test.jsonl")


# --- gsm8k, number and regex on real GSM8K rows ------------------------------------------------------------


def test_gsm8k_format_reads_every_real_row_and_scores_its_own_gold(gsm8k_test):
    fmt = answer_format("gsm8k")
    golds = [fmt.read_gold(row["answer"]) for row in gsm8k_test]
    assert all(gold is not None and parse_number(gold) is not None for gold in golds)
    assert golds == [extract_gold(row["answer"]) for row in gsm8k_test]
    assert correctness([tagged(g) for g in golds[:50]], answer=golds[:50], compare_as=["number"] * 50) == [2.0] * 50
    wrong = [tagged(str(parse_number(g) + 1)) for g in golds[:50]]
    assert correctness(wrong, answer=golds[:50], compare_as="number") == [0.0] * 50


def test_number_format_reads_plain_numeric_columns_from_real_rows(gsm8k_test):
    """The same real gold answers as a plain column: ints, floats, and strings with commas or dollars."""
    rows = []
    for row in gsm8k_test[:200]:
        value = parse_number(extract_gold(row["answer"]))
        rows.append({"question": row["question"], "target": int(value) if value == int(value) else float(value)})
    rows += [{"question": "Big?", "target": "1,250"}, {"question": "Money?", "target": "$18.00"},
             {"question": "Words?", "target": "eighteen"}, {"question": "Bool?", "target": True}]
    prepared, stats = prepare_dataset(rows, question_column="question", answer_column="target", answer="number")
    assert stats.kept == 202 and stats.dropped_no_answer == 2 and "without a numeric answer" in stats.summary()
    assert set(prepared["compare_as"]) == {"number"}
    assert prepared["answer"][200:] == ["1,250", "$18.00"]
    assert correctness([tagged("1250"), tagged("18")], answer=prepared["answer"][200:], compare_as="number") == [2.0, 2.0]


def test_regex_format_reproduces_gsm8k_reading_on_every_real_row(gsm8k_test):
    fmt = answer_format({"format": "regex", "pattern": r"####\s*(?P<answer>-?[\d,.]+)", "compare": "number"})
    assert fmt.comparison.name == "number"
    for row in gsm8k_test:
        assert parse_number(fmt.read_gold(row["answer"])) == parse_number(extract_gold(row["answer"]))
    exact = answer_format({"format": "regex", "pattern": r"Final: (\w+)"})
    assert exact.comparison.name == "exact" and exact.read_gold("x Final: Paris y Final: Rome") == "Rome"
    assert exact.read_gold("no marker") is None


@pytest.mark.parametrize("spec, message", [
    ({"format": "regex"}, "needs answer.pattern"),
    ({"format": "regex", "pattern": "(unclosed"}, "not a valid regular expression"),
    ({"format": "regex", "pattern": "no group"}, "has no group"),
    ({"format": "regex", "pattern": "(x)", "compare": "fuzzy"}, "unknown answer.compare 'fuzzy'"),
    ({"format": "number", "pattern": "(x)"}, "belong to answer.format 'regex'"),
    ({"format": "latex"}, "unknown answer.format 'latex'"),
])
def test_bad_answer_specs_are_one_line(spec, message):
    with pytest.raises(UserError, match=message) as error:
        answer_format(spec)
    assert "\n" not in str(error.value)


# --- math: MATH-style rows and math-verify ------------------------------------------------------------------


@pytest.mark.parametrize("gold, same, different", [
    (r"\frac{1}{2}", "0.5", "0.6"),
    (r"2\sqrt{2}", r"\sqrt{8}", r"\sqrt{6}"),
    (r"\dfrac{7}{8}", "0.875", "0.87"),
    (r"x^2 + 2x + 1", r"1 + 2x + x^2", r"x^2 + 1"),
    (r"9\pi", r"9 \pi", r"9"),
    ("5", r"\boxed{5}", "-5"),
])
def test_math_verify_equivalences(gold, same, different):
    assert math_equal(same, gold)
    assert not math_equal(different, gold)


def test_math_format_on_math_style_rows():
    rows = load_rows(str(MATH_STYLE), split="test", question_column="problem", answer_column="solution")
    prepared, stats = prepare_dataset(rows, question_column="problem", answer_column="solution", answer="math",
                                      system="Answer in LaTeX.")
    assert stats.kept == len(rows) - 1 and stats.dropped_no_answer == 1  # the row without a \boxed{} answer
    assert "without a LaTeX answer math-verify can read" in stats.summary()
    golds = prepared["answer"]
    assert golds[:3] == [r"\frac{1}{2}", r"2\sqrt{2}", "5"] and r"x^2 + 2x + 1" in golds
    assert set(prepared["compare_as"]) == {"math"}
    # Equivalent answers written differently score as correct; the reward reads the per-row comparison.
    equivalent = {r"\frac{1}{2}": "0.5", r"2\sqrt{2}": r"\sqrt{8}", r"\frac{4}{9}": r"\frac{8}{18}",
                  r"x^2 + 2x + 1": r"(x+1)^2", r"\frac{1}{10}": "0.1", r"4\sqrt{2}": r"\sqrt{32}", "0.875": r"\frac{7}{8}"}
    for gold, written in equivalent.items():
        assert gold in golds
        assert correctness([tagged(written)], answer=[gold], compare_as=["math"]) == [2.0], (gold, written)
        assert correctness([tagged(written + " + 1")], answer=[gold], compare_as=["math"]) == [0.0], (gold, written)
    # Compared as numbers, LaTeX answers would all be wrong: the comparison is what makes math tasks work.
    assert correctness([tagged("0.5")], answer=[r"\frac{1}{2}"], compare_as=["number"]) == [0.0]


def test_math_scoring_strict_and_lenient():
    score = score_completion(r"The answer is \boxed{\frac{1}{2}}.", "0.5", "math")
    assert score["lenient_correct"] is True and score["strict_correct"] is False and score["extracted"] is None
    score = score_completion(tagged(r"\sqrt{8}"), r"2\sqrt{2}", "math")
    assert score["strict_correct"] is True and score["format_ok"] is True


# --- exact: the word-puzzle example rows -------------------------------------------------------------------


def test_exact_format_on_the_word_puzzle_rows():
    raw = read_jsonl(PUZZLES / "test.jsonl")
    rows = load_rows(str(PUZZLES), split="test", question_column="puzzle", answer_column="solution",
                     system_column="instructions")
    prepared, stats = prepare_dataset(rows, question_column="puzzle", answer_column="solution", answer="exact",
                                      system_column="instructions")
    assert stats.kept == len(raw) and prepared["answer"] == [row["solution"] for row in raw]
    # Each row's own system prompt replaces the recipe's.
    assert [p[0] for p in prepared["prompt"]] == [{"role": "system", "content": row["instructions"]} for row in raw]
    gold = raw[0]["solution"]
    variants = [gold.upper(), f"  {gold}. ", f'"{gold}"']
    assert correctness([tagged(v) for v in variants], answer=[gold] * 3, compare_as="exact") == [2.0] * 3
    assert correctness([tagged(gold + "x")], answer=[gold], compare_as="exact") == [0.0]
    assert score_completion(f"blah\nThe answer is: {gold}", gold, "exact")["lenient_correct"] is True


# --- choice: multiple-choice rows --------------------------------------------------------------------------


def test_choice_format_reads_letters_and_indexes():
    raw = read_jsonl(CHOICE)
    by_index, _ = prepare_dataset(raw, answer_column="label", answer="choice")
    by_letter, _ = prepare_dataset(raw, answer_column="letter", answer="choice")
    assert by_index["answer"] == by_letter["answer"] == [row["letter"] for row in raw]
    gold = raw[0]["letter"]  # B
    written = [gold, f"({gold.lower()})", f"{gold}) Mercury", f"The answer is {gold}"]
    assert correctness([tagged(w) for w in written], answer=[gold] * 4, compare_as="choice") == [2.0] * 4
    assert correctness([tagged("A"), tagged("Mercury")], answer=[gold] * 2, compare_as="choice") == [0.0, 0.0]
    assert comparison("choice").lenient("Between (A) and (B), I pick (B).") == "B"
    # Letters run to Z (MMLU-Pro has ten options); a key that is no letter, or an index past Z, is dropped.
    _, stats = prepare_dataset([{"question": "q", "answer": "no idea"}, {"question": "q", "answer": 26},
                                {"question": "q", "answer": "C"}], answer="choice")
    assert stats.kept == 1 and stats.dropped_no_answer == 2


# --- one reward batch, several comparisons ----------------------------------------------------------------


def test_correctness_compares_each_row_its_own_way():
    completions = [tagged("0.5"), tagged("1,000"), tagged("PARIS"), tagged("(c)")]
    golds = [r"\frac{1}{2}", "1000", "paris", "C"]
    kinds = ["math", "number", "exact", "choice"]
    assert correctness(completions, answer=golds, compare_as=kinds) == [2.0] * 4
    assert correctness(completions, answer=golds[::-1], compare_as=kinds[::-1]) == [0.0] * 4
    with pytest.raises(UserError, match="compare_as 'fuzzy'"):
        correctness(completions[:1], answer=golds[:1], compare_as=["fuzzy"])


def test_every_format_is_covered():
    assert set(FORMATS) == {"gsm8k", "number", "math", "exact", "choice", "regex"}
