"""Data: real GSM8K rows, generated problems, prompt building, dropping and counting, loading and its errors."""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path

import pytest
from datasets import Dataset

from reasoner.data import (
    SYSTEM_PROMPT,
    PrepStats,
    build_prompt,
    extract_gold,
    generate_problems,
    load_rows,
    prepare_dataset,
    resolve_system_prompt,
)
from reasoner.errors import UserError
from reasoner.rewards import correctness, parse_number, strict_format
from shared_data import GSM8K

@pytest.fixture
def gsm8k_rows() -> Path:
    """The real GSM8K rows; without them these tests fail (as the other tests reading them do), never skip."""
    if not (GSM8K / "train.jsonl").is_file():
        pytest.fail(f"real GSM8K rows not found at {GSM8K}: the shared folder must sit beside the repository checkout")
    return GSM8K

FEW_SHOT = [
    {
        "question": "Tom has 3 apples and buys 2 more. How many apples does he have?",
        "answer": "<reasoning>\n3 + 2 = 5\n</reasoning>\n<answer>\n5\n</answer>\n",
    }
]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# ---------------------------------------------------------------------------------------------------------
# Real GSM8K


@pytest.mark.usefixtures("gsm8k_rows")
@pytest.mark.parametrize("split", ["train", "test"])
def test_every_real_row_has_a_numeric_gold_answer(split: str) -> None:
    rows = read_jsonl(GSM8K / f"{split}.jsonl")
    assert rows
    for row in rows:
        gold = extract_gold(row["answer"])
        assert gold is not None and parse_number(gold) is not None, row["answer"][-40:]
        assert "," not in gold


@pytest.mark.usefixtures("gsm8k_rows")
def test_load_rows_reads_the_real_files() -> None:
    expected = read_jsonl(GSM8K / "test.jsonl")
    from_folder = load_rows(str(GSM8K), split="test")
    from_file = load_rows(str(GSM8K / "test.jsonl"), split="ignored-for-files")
    for rows in (from_folder, from_file):
        assert len(rows) == len(expected)
        assert {"question", "answer"} <= set(rows.column_names)
        assert rows[0] == {key: expected[0][key] for key in rows.column_names}
        assert rows[len(expected) - 1]["question"] == expected[-1]["question"]


@pytest.mark.usefixtures("gsm8k_rows")
def test_prepare_real_train_split_keeps_every_row() -> None:
    rows = load_rows(str(GSM8K), split="train")
    prepared, stats = prepare_dataset(
        rows, system="default", few_shot=FEW_SHOT, question_column="question", answer_column="answer"
    )
    assert stats == PrepStats(kept=len(rows))
    # ours, then every column of the row for the rewards (the raw answer column is replaced by the gold answer)
    assert prepared.column_names == ["prompt", "answer", "compare_as", "read_from", "question", "solution"]
    assert set(prepared["compare_as"]) == {"number"}  # GSM8K gold answers compare as numbers
    first = prepared[0]
    assert first["answer"] == extract_gold(rows[0]["answer"])
    assert [m["role"] for m in first["prompt"]] == ["system", "user", "assistant", "user"]
    assert first["prompt"][0]["content"] == SYSTEM_PROMPT
    assert first["prompt"][-1]["content"] == rows[0]["question"]
    # The gold strings are what the correctness reward receives as ``answer``.
    completion = "<reasoning>\nr\n</reasoning>\n<answer>\n" + first["answer"] + "\n</answer>\n"
    assert correctness([completion], answer=[first["answer"]]) == [2.0]


# ---------------------------------------------------------------------------------------------------------
# Gold answers and prompts


@pytest.mark.parametrize(
    ("field", "gold"),
    [
        ("Steps.\n#### 72", "72"),
        ("#### 1,000", "1000"),
        ("####-3", "-3"),
        ("#### 2.5 ", "2.5"),
        ("first #### 5\n#### 6", "6"),
        ("no marker 72", None),
        ("steps\n####", None),
        ("steps\n####   \n", None),
        ("", None),
        (None, None),
        (72, None),
    ],
)
def test_extract_gold(field, gold) -> None:
    assert extract_gold(field) == gold


def test_system_prompt_asks_for_the_scored_format() -> None:
    assert "<reasoning>\n...\n</reasoning>\n<answer>\n...\n</answer>\n" in SYSTEM_PROMPT
    assert strict_format(["<reasoning>\n...\n</reasoning>\n<answer>\n...\n</answer>\n"]) == [0.5]
    assert resolve_system_prompt("default") == SYSTEM_PROMPT
    assert resolve_system_prompt(None) == SYSTEM_PROMPT
    assert resolve_system_prompt("Be brief.") == "Be brief."


def test_build_prompt_orders_system_examples_question() -> None:
    second = {"question": "What is 2 * 3?", "answer": "<reasoning>\n2 * 3 = 6\n</reasoning>\n<answer>\n6\n</answer>\n"}
    messages = build_prompt("How many?", "default", FEW_SHOT + [second])
    assert messages == [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": FEW_SHOT[0]["question"]},
        {"role": "assistant", "content": FEW_SHOT[0]["answer"]},
        {"role": "user", "content": second["question"]},
        {"role": "assistant", "content": second["answer"]},
        {"role": "user", "content": "How many?"},
    ]
    assert build_prompt("Q?", "Custom words, verbatim.", []) == [
        {"role": "system", "content": "Custom words, verbatim."},
        {"role": "user", "content": "Q?"},
    ]
    assert build_prompt("Q?", "", []) == [{"role": "user", "content": "Q?"}]


@pytest.mark.parametrize(
    "bad", [[{"question": "q"}], [{"answer": "a"}], ["just text"], [{"question": 1, "answer": "a"}]]
)
def test_bad_few_shot_is_a_user_error(bad: list) -> None:
    with pytest.raises(UserError, match=r"few_shot\[0\]"):
        build_prompt("Q?", "default", bad)


# ---------------------------------------------------------------------------------------------------------
# Generated problems

ANNOTATION = re.compile(r"<<([^=<>]+)=([^<>]+)>>")
STEP = re.compile(r"(\d+)([-+*/])(\d+)")
APPLY = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
}


def recompute(row: dict) -> tuple[Fraction, list[str]]:
    """Recompute a generated answer from its question alone, following its annotated steps.

    Every operand of every step must be a number from the question or the result of an earlier step, every
    number of the question must be used, and each step's result is recomputed here, not read from the text.
    """
    available = [Fraction(n) for n in re.findall(r"\d+", row["question"])]
    unused = list(available)
    results: list[Fraction] = []
    operators = []
    steps = ANNOTATION.findall(row["answer"])
    assert steps, row
    for expression, written in steps:
        match = STEP.fullmatch(expression)
        assert match, expression
        left, op, right = Fraction(match.group(1)), match.group(2), Fraction(match.group(3))
        for operand in (left, right):
            assert operand in available + results, (operand, row)
            if operand in unused:
                unused.remove(operand)
        value = APPLY[op](left, right)
        assert value == Fraction(written) and value.denominator == 1 and value >= 0, (expression, written)
        results.append(value)
        operators.append(op)
    assert not unused, (unused, row)
    return results[-1], operators


def test_generated_problems_are_deterministic() -> None:
    assert generate_problems(60, seed=7) == generate_problems(60, seed=7)
    assert generate_problems(60, seed=7) != generate_problems(60, seed=8)
    assert generate_problems(10, seed=7) == generate_problems(60, seed=7)[:10]
    assert generate_problems(0, seed=7) == []


def test_generated_answers_are_correct_and_varied() -> None:
    rows = generate_problems(300, seed=11)
    operators: set[str] = set()
    two_step = money = 0
    for row in rows:
        assert set(row) == {"question", "answer"}
        value, ops = recompute(row)
        gold = extract_gold(row["answer"])
        assert gold is not None and parse_number(gold) == value
        assert row["answer"].endswith(f"\n#### {gold}")
        operators.update(ops)
        two_step += len(ops) >= 2
        money += "$" in row["question"]
    assert operators == {"+", "-", "*", "/"}
    assert two_step >= 50 and money >= 30
    assert len({row["question"] for row in rows}) >= 290
    assert len({row["question"].split()[1] for row in rows}) >= 5  # different phrasings, not one template


def test_generated_source_splits_differ_and_count_is_respected() -> None:
    train = load_rows("generated", split="train", num_generated=20, seed=3)
    test = load_rows("generated", split="test", num_generated=20, seed=3)
    assert len(train) == len(test) == 20
    assert train.to_list() == generate_problems(20, 3)
    assert train["question"] != test["question"]
    with pytest.raises(UserError, match="num_generated"):
        load_rows("generated", split="train", num_generated=0, seed=3)


# ---------------------------------------------------------------------------------------------------------
# Dropping and counting


def test_rows_without_a_gold_number_are_dropped_and_counted() -> None:
    rows = Dataset.from_list(
        [
            {"question": "Keep me?", "answer": "steps\n#### 12"},
            {"question": "No marker", "answer": "the answer is 12"},
            {"question": "Empty gold", "answer": "steps\n#### "},
            {"question": "Word gold", "answer": "steps\n#### twelve"},
            {"question": "Missing answer", "answer": None},
            {"question": "  ", "answer": "#### 3"},
            {"question": "Separator", "answer": "#### 1,500"},
        ]
    )
    prepared, stats = prepare_dataset(
        rows, system="default", few_shot=[], question_column="question", answer_column="answer"
    )
    assert stats == PrepStats(kept=2, dropped_no_answer=4, dropped_too_long=0, dropped_no_question=1)
    assert stats.total == len(rows)
    assert prepared["answer"] == ["12", "1500"]
    assert [p[-1]["content"] for p in prepared["prompt"]] == ["Keep me?", "Separator"]
    assert "kept 2 of 7" in stats.summary()


def test_no_usable_rows_is_a_user_error() -> None:
    rows = [{"question": "q", "answer": "no marker"}, {"question": "q2", "answer": "none"}]
    with pytest.raises(UserError, match="no usable rows: .*2 without .*fix: .*answer") as error:
        prepare_dataset(rows, system="default", few_shot=[], question_column="question", answer_column="answer")
    assert "\n" not in str(error.value)


def make_tokenizer(with_template: bool = True):
    """A real word-level tokenizer trained here, with a ChatML-style chat template."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [SYSTEM_PROMPT, "system user assistant how many apples does she have left", FEW_SHOT[0]["answer"]]
    core = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.train_from_iterator(
        corpus, trainers.WordLevelTrainer(special_tokens=["[UNK]", "<|im_start|>", "<|im_end|>"])
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]")
    if with_template:
        tokenizer.chat_template = (
            "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
            "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
        )
    return tokenizer


def test_long_prompts_are_dropped_with_a_real_tokenizer() -> None:
    tokenizer = make_tokenizer()
    short_q = "how many apples does she have left"
    long_q = " ".join(["apples"] * 200) + " how many"
    rows = [
        {"question": short_q, "answer": "#### 1"},
        {"question": long_q, "answer": "#### 2"},
        {"question": short_q + " now", "answer": "#### 3"},
    ]
    lengths = [
        len(tokenizer.apply_chat_template(build_prompt(r["question"], "default", FEW_SHOT), add_generation_prompt=True,
                                          tokenize=True, return_dict=True)["input_ids"])
        for r in rows
    ]
    assert lengths[1] > lengths[2] > lengths[0]
    limit = lengths[2]  # the limit is inclusive
    prepared, stats = prepare_dataset(
        rows, system="default", few_shot=FEW_SHOT, question_column="question", answer_column="answer",
        tokenizer=tokenizer, max_prompt_tokens=limit,
    )
    assert stats == PrepStats(kept=2, dropped_too_long=1)
    assert prepared["answer"] == ["1", "3"]
    _, stats = prepare_dataset(
        rows, system="default", few_shot=FEW_SHOT, question_column="question", answer_column="answer",
        tokenizer=tokenizer, max_prompt_tokens=limit - 1,
    )
    assert stats == PrepStats(kept=1, dropped_too_long=2)
    with pytest.raises(UserError, match="no usable rows"):
        prepare_dataset(
            rows, system="default", few_shot=FEW_SHOT, question_column="question", answer_column="answer",
            tokenizer=tokenizer, max_prompt_tokens=lengths[0] - 1,
        )
    # Without a limit nothing is measured or dropped.
    _, stats = prepare_dataset(
        rows, system="default", few_shot=FEW_SHOT, question_column="question", answer_column="answer",
        tokenizer=tokenizer, max_prompt_tokens=None,
    )
    assert stats == PrepStats(kept=3)


def test_tokenizer_without_chat_template_is_a_user_error() -> None:
    with pytest.raises(UserError, match="chat template"):
        prepare_dataset(
            [{"question": "q", "answer": "#### 1"}], system="default", few_shot=[], question_column="question",
            answer_column="answer", tokenizer=make_tokenizer(with_template=False), max_prompt_tokens=10,
        )


# ---------------------------------------------------------------------------------------------------------
# Loading and its errors


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


ROWS = [
    {"question": "What is 1 + 1?", "answer": "1 + 1 = 2\n#### 2"},
    {"question": "What is 2 + 2?", "answer": "#### 4"},
]


def test_missing_columns_name_the_column_and_the_existing_ones(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", [{"problem": "p", "solution": "#### 1"}])
    with pytest.raises(UserError) as error:
        load_rows(str(path), split="train")
    message = str(error.value)
    assert "'question'" in message and "problem" in message and "solution" in message
    with pytest.raises(UserError, match="no column 'answer'.*problem, solution"):
        load_rows(str(path), split="train", question_column="problem", answer_column="answer")
    rows = load_rows(str(path), split="train", question_column="problem", answer_column="solution")
    prepared, stats = prepare_dataset(
        rows, system="default", few_shot=[], question_column="problem", answer_column="solution"
    )
    assert stats.kept == 1 and prepared["answer"] == ["1"]
    with pytest.raises(UserError, match="no column 'question'.*problem"):
        prepare_dataset(rows, system="default", few_shot=[], question_column="question", answer_column="solution")


def test_missing_file_and_folder_without_the_split(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found: .*nowhere.jsonl"):
        load_rows(str(tmp_path / "nowhere.jsonl"), split="train")
    with pytest.raises(UserError, match="not found"):
        load_rows("./no/such/folder", split="train")
    write_jsonl(tmp_path / "train.jsonl", ROWS)
    assert len(load_rows(str(tmp_path), split="train")) == 2
    with pytest.raises(UserError, match=r"'test'.*train\.jsonl"):
        load_rows(str(tmp_path), split="test")


def test_empty_and_malformed_files(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(UserError, match="no rows"):
        load_rows(str(tmp_path / "empty.jsonl"), split="train")
    (tmp_path / "bad.jsonl").write_text(json.dumps(ROWS[0]) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"bad\.jsonl:2"):
        load_rows(str(tmp_path / "bad.jsonl"), split="train")
    (tmp_path / "list.jsonl").write_text("[1, 2]\n", encoding="utf-8")
    with pytest.raises(UserError, match="not an object"):
        load_rows(str(tmp_path / "list.jsonl"), split="train")


def test_json_and_parquet_files(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "rows.json").write_text(json.dumps(ROWS), encoding="utf-8")
    (tmp_path / "wrapped.json").write_text(json.dumps({"data": ROWS}), encoding="utf-8")
    write_jsonl(tmp_path / "lines.json", ROWS)
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "rows.parquet")
    for name in ("rows.json", "wrapped.json", "lines.json", "rows.parquet"):
        rows = load_rows(str(tmp_path / name), split="train")
        assert rows.to_list() == ROWS, name


def test_folder_laid_out_like_a_hub_snapshot(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "main").mkdir()
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "main" / "test-00000-of-00001.parquet")
    (tmp_path / "README.md").write_text(
        "---\nconfigs:\n- config_name: main\n  data_files:\n  - split: test\n    path: main/test-*\n---\n",
        encoding="utf-8",
    )
    rows = load_rows(str(tmp_path), config="main", split="test")
    assert rows.to_list() == ROWS
    with pytest.raises(UserError, match="'train'"):
        load_rows(str(tmp_path), config="main", split="train")
