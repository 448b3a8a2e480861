"""Multiple choice as a task: options rendered into the prompt from a list column, a ``{label, text}`` column or
one column per option, with the recipe's template; any number of options; gold keys as letters, 0-based or
1-based indexes or the row's own labels; and one extractor that pays exactly the letter a completion commits
to (property tests), so the grader cannot be gamed. The ARC-style example recipe trains on CPU."""

from __future__ import annotations

import json
import os
import string
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from reasoner.data import prepare_dataset
from reasoner.errors import UserError
from reasoner.recipe.load import load_recipe
from reasoner.rewards import correctness
from reasoner.tasks.choice import ChoiceLayout, committed_letter, read_choice_key, render_choices

ROOT = Path(__file__).resolve().parents[2]
CHOICE = ROOT / "tests" / "data" / "choice" / "test.jsonl"
EXAMPLE = ROOT / "examples" / "science-choice"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def tagged(text: str) -> str:
    return f"<reasoning>\nthinking\n</reasoning>\n<answer>\n{text}\n</answer>\n"


# --- the extractor ------------------------------------------------------------------------------------------

COMMITS_TO_B = ["B", "(B)", "B)", "B.", "**B**", "Option B", "option (B)", "\\boxed{B}", "$\\boxed{B}$", "B. the text",
                "B) Mercury", "(B) Mercury", "The answer is (B)", "The answer is B.", "Answer: B", "the correct option is B",
                "**Answer: (B)**", "b", "(b)", "B. A whale is a mammal"]
COMMITS_TO_NOTHING = ["a whale", "A whale", "A is wrong; the answer is C", "A or B", "(A) or (B)", "B or C", "either A or B",
                      "A and B", "B, C", "not sure", "", "Mercury", "I think it could be A, B or C", "B. or (C)",
                      "The answer is B or C", "an apple"]


@pytest.mark.parametrize("text", COMMITS_TO_B)
def test_commitments_to_one_letter_are_read(text):
    assert committed_letter(text) == "B"


@pytest.mark.parametrize("text", COMMITS_TO_NOTHING)
def test_words_hedges_and_two_letters_commit_to_nothing(text):
    assert committed_letter(text) is None


LETTER = st.sampled_from(string.ascii_uppercase)
FORMS = st.sampled_from(["{x}", "({x})", "{x})", "{x}.", "**{x}**", "Option {x}", "\\boxed{{{x}}}", "{x}. {text}",
                         "The answer is ({x})", "The answer is {x}", "Answer: {x}", "{x}) {text}"])
WORDS = st.text(alphabet=string.ascii_lowercase + " ", min_size=1, max_size=30).filter(lambda t: t.strip())


@settings(max_examples=300, deadline=None)
@given(LETTER, FORMS, WORDS)
def test_property_every_committed_form_pays_exactly_its_letter(letter, form, text):
    written = form.format(x=letter, text=text.strip())
    assert committed_letter(written) == letter
    gold_other = "A" if letter != "A" else "B"
    assert correctness([tagged(written)], answer=[letter], compare_as="choice") == [2.0]
    assert correctness([tagged(written)], answer=[gold_other], compare_as="choice") == [0.0]


@settings(max_examples=300, deadline=None)
@given(LETTER, LETTER, st.sampled_from(["{a} or {b}", "({a}) or ({b})", "{a} and {b}", "{a}, {b}", "{a}/{b}",
                                        "{a} is wrong; the answer is {b}", "The answer is {a}, not {b}",
                                        "Either ({a}) or ({b})", "{a}) {b})"]))
def test_property_naming_two_letters_pays_neither(first, second, form):
    if first == second:
        return
    assert committed_letter(form.format(a=first, b=second)) is None


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(string.ascii_lowercase), WORDS)
def test_property_a_word_starting_with_a_letter_is_not_that_letter(initial, rest):
    word = initial + rest.split()[0] if rest.split() else initial + "x"
    sentence = f"{word} {rest}".strip()
    if len(word) > 1:
        assert committed_letter(sentence) is None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_property_any_text_gives_one_letter_or_none(text):
    found = committed_letter(text)
    assert found is None or (len(found) == 1 and found in string.ascii_uppercase)


# --- gold keys and options ------------------------------------------------------------------------------------


def test_gold_keys_as_letters_indexes_and_labels():
    assert read_choice_key("C") == "C" and read_choice_key("(c)") == "C"
    assert read_choice_key(2, index_from=0) == "C" and read_choice_key("2", index_from=0) == "C"
    assert read_choice_key(2, index_from=1) == "B" and read_choice_key("1", index_from=1) == "A"
    assert read_choice_key(0, index_from=1) is None
    assert read_choice_key("3", labels=["1", "2", "3", "4"]) == "C"
    assert read_choice_key("J", count=10) == "J" and read_choice_key("K", count=10) is None
    assert read_choice_key(None) is None and read_choice_key(1.5) is None and read_choice_key(["A"]) is None


def test_options_from_a_list_column_with_a_template():
    rows = read_jsonl(CHOICE)
    for row in rows:  # the shipped rows also spell the options in the question; ask the bare question here
        row["question"] = row["question"].split("\n")[0]
    layout = ChoiceLayout(column="choices", template="Q: {question}\n{choices}\nA:", line="{label}. {text}")
    prepared, stats = prepare_dataset(rows, answer_column="label", answer={"format": "choice"}, choices=layout)
    assert stats.kept == len(rows)
    first = prepared["prompt"][0][-1]["content"]
    assert first == "Q: Which planet is closest to the Sun?\nA. Venus\nB. Mercury\nC. Earth\nD. Mars\nA:"
    assert prepared["answer"] == [row["letter"] for row in rows]
    assert prepared["choices"][0] == rows[0]["choices"]  # the options reach the rewards too
    one_based, _ = prepare_dataset([{**row, "label": row["label"] + 1} for row in rows], answer_column="label",
                                   answer={"format": "choice", "index_from": 1}, choices=layout)
    assert one_based["answer"] == prepared["answer"]


def test_options_from_label_text_columns_and_one_column_per_option_beyond_e():
    ten = [f"option {i}" for i in range(10)]
    rows = [{"question": "Pick the tenth.", "choices": {"label": list("ABCDEFGHIJ"), "text": ten}, "key": "J"},
            {"question": "Pick the third.", "choices": {"label": ["1", "2", "3", "4"], "text": ten[:4]}, "key": "3"},
            {"question": "Pick one of four.", "choices": {"label": list("ABCD"), "text": ten[:4]}, "key": "F"}]
    prepared, stats = prepare_dataset(rows, answer_column="key", answer="choice", choices=ChoiceLayout(column="choices"))
    assert prepared["answer"] == ["J", "C"] and stats.dropped_no_answer == 1  # F is past the row's four options
    assert "(J) option 9" in prepared["prompt"][0][-1]["content"]
    assert "(C) option 2" in prepared["prompt"][1][-1]["content"]
    columns = [{"q": "2+2?", "A": "3", "B": "4", "C": "5", "gold": 1}]
    prepared, _ = prepare_dataset(columns, question_column="q", answer_column="gold", answer="choice",
                                  choices=ChoiceLayout(columns=("A", "B", "C")))
    assert prepared["answer"] == ["B"] and prepared["prompt"][0][-1]["content"].endswith("(A) 3\n(B) 4\n(C) 5")
    assert render_choices("q", [str(i) for i in range(26)]).endswith("(Z) 25")
    with pytest.raises(UserError, match="more than the 26 letters"):
        render_choices("q", [str(i) for i in range(27)])


def write(folder: Path, data: dict) -> Path:
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.mark.parametrize("dataset, answer, expected", [
    ({"choices_column": "choices"}, {"format": "exact"}, "set answer.format: choice"),
    ({"choices_column": "choices", "choice_columns": ["A", "B"]}, {"format": "choice"}, "keep the one"),
    ({"choices_column": "choices", "choice_line": "{letter}) {text}"}, {"format": "choice"}, "uses {letter}"),
    ({"choice_columns": "A"}, {"format": "choice"}, "must be a list or null"),
    ({"choice_columns": ["A", ""]}, {"format": "choice"}, "must list the option columns"),
    ({}, {"format": "choice", "index_from": 2}, "answer.index_from is 2"),
    ({}, {"format": "exact", "index_from": 1}, "belongs to answer.format 'choice'"),
])
def test_bad_choice_settings_are_one_line(tmp_path, dataset, answer, expected):
    data = yaml.safe_load((EXAMPLE / "recipe.yaml").read_text(encoding="utf-8"))
    data["dataset"] = {"id": str(EXAMPLE), **dataset}
    data["answer"] = answer
    with pytest.raises(UserError) as error:
        load_recipe(str(write(tmp_path, data)))
    assert expected in str(error.value) and "\n" not in str(error.value)


# --- the ARC-style recipe trains on CPU ------------------------------------------------------------------------


def test_the_arc_style_recipe_shows_its_options_and_trains(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1",
               PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "reasoner.cli", "train", "--recipe", str(EXAMPLE / "recipe.yaml"), "--model.id", "tiny",
         "--max_steps", "2", "--per_device_train_batch_size", "4", "--num_generations", "4",
         "--max_completion_length", "16", "--tracking.samples_every", "1", "--output_dir", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    samples = [json.loads(line) for line in (out / "completions.jsonl").read_text().splitlines()]
    assert samples and all("(A) " in s["question"] and "(D) " in s["question"] for s in samples)
    steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in steps if "reward" in r] == [1, 2]


@pytest.mark.parametrize("text", ["The answer is a whale", "my choicea b", "achoicea choicea", "the answer is an elk"])
def test_an_article_or_a_word_after_the_keyword_is_not_a_letter(text):
    assert committed_letter(text) is None
