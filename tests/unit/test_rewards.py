"""Reward functions: exact values on tricky completions, helpers, the registry, and properties."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reasoner import rewards
from reasoner.errors import UserError
from reasoner.rewards import (
    REWARD_RANGES,
    REWARDS,
    correctness,
    extract_answer,
    get_reward_funcs,
    integer,
    last_number,
    numbers_equal,
    parse_number,
    soft_format,
    strict_format,
    xml_count,
)

NAMES = ("correctness", "integer", "strict_format", "soft_format", "xml_count")


def fmt(reasoning: str, answer: str) -> str:
    """A completion in the exact format."""
    return f"<reasoning>\n{reasoning}\n</reasoning>\n<answer>\n{answer}\n</answer>\n"


# (id, completion, gold, correctness, integer, strict_format, soft_format, xml_count)
CASES = [
    ("exact", fmt("2 + 2 = 4", "4"), "4", 2.0, 0.5, 0.5, 0.5, 0.5),
    (
        "multi-line reasoning",
        fmt("Half of 48 is 24.\nThen 48 + 24 = 72.\n\nSo 72.", "72"),
        "72", 2.0, 0.5, 0.5, 0.5, 0.5,
    ),
    ("no final newline", fmt("r", "72")[:-1], "72", 2.0, 0.5, 0.5, 0.5, 0.5),
    ("two final newlines", fmt("r", "72") + "\n", "72", 2.0, 0.5, 0.0, 0.5, 0.499),
    ("trailing text", fmt("r", "7") + "Hope this helps!", "7", 2.0, 0.5, 0.0, 0.5, 0.484),
    ("wrong number", fmt("r", "71"), "72", 0.0, 0.5, 0.5, 0.5, 0.5),
    ("no tags", "The answer is 72.", "72", 0.0, 0.0, 0.0, 0.0, 0.0),
    ("bare number, no tags", "72", "72", 0.0, 0.0, 0.0, 0.0, 0.0),
    ("tags without newlines", "<reasoning>r</reasoning><answer>72</answer>", "72", 2.0, 0.5, 0.0, 0.5, 0.0),
    ("tags on one line, spaces", "<reasoning> r </reasoning> <answer> 72 </answer>", "72", 2.0, 0.5, 0.0, 0.5, 0.0),
    (
        "two answer blocks, last counts",
        "<reasoning>\nr\n</reasoning>\n<answer>\n5\n</answer>\n<answer>\n7\n</answer>\n",
        "7", 2.0, 0.5, 0.0, 0.5, 0.25,
    ),
    (
        "two answer blocks, first is not the answer",
        "<reasoning>\nr\n</reasoning>\n<answer>\n5\n</answer>\n<answer>\n7\n</answer>\n",
        "5", 0.0, 0.5, 0.0, 0.5, 0.25,
    ),
    (
        "truncated before </answer>",
        "<reasoning>\nr\n</reasoning>\n<answer>\n18",
        "18", 0.0, 0.0, 0.0, 0.0, 0.375,
    ),
    ("answer without reasoning", "<answer>\n18\n</answer>", "18", 2.0, 0.5, 0.0, 0.0, 0.125),
    ("reasoning without answer", "<reasoning>\n18\n</reasoning>\n", "18", 0.0, 0.0, 0.0, 0.0, 0.25),
    ("text before the format", "Sure!\n" + fmt("r", "18"), "18", 2.0, 0.5, 0.0, 0.5, 0.5),
    ("empty answer block", fmt("r", ""), "18", 0.0, 0.0, 0.0, 0.5, 0.5),
    ("empty reasoning block", "<reasoning>\n\n</reasoning>\n<answer>\n18\n</answer>\n", "18", 2.0, 0.5, 0.0, 0.5, 0.5),
    ("negative", fmt("It drops by 3.", "-3"), "-3", 2.0, 0.5, 0.5, 0.5, 0.5),
    ("negative vs positive gold", fmt("r", "-3"), "3", 0.0, 0.5, 0.5, 0.5, 0.5),
    ("explicit plus", fmt("r", "+4"), "4", 2.0, 0.5, 0.5, 0.5, 0.5),
    ("decimal", fmt("r", "0.5"), "0.5", 2.0, 0.5, 0.5, 0.5, 0.5),
    ("bare fraction", fmt("r", ".5"), "0.5", 2.0, 0.5, 0.5, 0.5, 0.5),
    ("18.00 equals 18", fmt("r", "18.00"), "18", 2.0, 0.5, 0.5, 0.5, 0.5),
    ("18.5 is not 18", fmt("r", "18.5"), "18", 0.0, 0.5, 0.5, 0.5, 0.5),
    ("thousands separator", fmt("r", "1,000"), "1000", 2.0, 0.5, 0.5, 0.5, 0.5),
    ("gold with separator", fmt("r", "1000"), "1,000", 2.0, 0.5, 0.5, 0.5, 0.5),
    ("millions", fmt("r", "12,345,678"), "12345678", 2.0, 0.5, 0.5, 0.5, 0.5),
    ("bad grouping is not a number", fmt("r", "1,00"), "100", 0.0, 0.0, 0.5, 0.5, 0.5),
    ("currency", fmt("r", "$18"), "18", 2.0, 0.5, 0.5, 0.5, 0.5),
    ("currency with cents and separator", fmt("r", "$1,000.00"), "1000", 2.0, 0.5, 0.5, 0.5, 0.5),
    ("negative currency", fmt("r", "-$5"), "-5", 2.0, 0.5, 0.5, 0.5, 0.5),
    ("percent", fmt("r", "50%"), "50", 2.0, 0.5, 0.5, 0.5, 0.5),
    ("sentence period", fmt("r", "18."), "18", 2.0, 0.5, 0.5, 0.5, 0.5),
    ("surrounding spaces", fmt("r", "  18  "), "18", 2.0, 0.5, 0.5, 0.5, 0.5),
    ("word instead of number", fmt("r", "eighteen"), "18", 0.0, 0.0, 0.5, 0.5, 0.5),
    ("number with unit", fmt("r", "18 dollars"), "18", 0.0, 0.0, 0.5, 0.5, 0.5),
    ("sentence as answer", fmt("r", "The answer is 18"), "18", 0.0, 0.0, 0.5, 0.5, 0.5),
    ("multi-line answer", fmt("r", "18\n18"), "18", 0.0, 0.0, 0.5, 0.5, 0.5),
    ("less-than sign in reasoning", fmt("3 < 5 and 5 > 3", "5"), "5", 2.0, 0.5, 0.5, 0.5, 0.5),
    (
        "answer tag inside reasoning",
        "<reasoning>\nI will write <answer> later\n</reasoning>\n<answer>\n4\n</answer>\n",
        "4", 2.0, 0.5, 0.0, 0.5, 0.5,
    ),
    ("long rambling after the answer", fmt("r", "9") + "x" * 800, "9", 2.0, 0.5, 0.0, 0.5, 0.0),
    ("empty completion", "", "9", 0.0, 0.0, 0.0, 0.0, 0.0),
    ("gold is not a number", fmt("r", "9"), "nine", 0.0, 0.5, 0.5, 0.5, 0.5),
]


def as_messages(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def as_parts(text: str) -> list[dict]:
    return [{"role": "assistant", "content": [{"type": "text", "text": text}]}]


SHAPES = {"string": lambda t: t, "messages": as_messages, "content parts": as_parts}


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_reward_table(case: tuple, shape: str) -> None:
    _, text, gold, *expected = case
    completion = SHAPES[shape](text)
    got = [REWARDS[name]([completion], answer=[gold])[0] for name in NAMES]
    assert got == pytest.approx(expected, abs=1e-9), dict(zip(NAMES, got))


def test_batch_keeps_order_and_accepts_trl_keywords() -> None:
    texts = [case[1] for case in CASES]
    golds = [case[2] for case in CASES]
    completions = [as_messages(t) for t in texts]
    extra = {"prompts": [[{"role": "user", "content": "q"}]] * len(texts), "completion_ids": [[1]] * len(texts),
             "trainer_state": None, "question": ["q"] * len(texts)}
    for index, name in enumerate(NAMES):
        got = REWARDS[name](completions, answer=golds, **extra)
        assert got == pytest.approx([case[3 + index] for case in CASES])
        assert all(type(value) is float for value in got)


def test_last_assistant_message_is_scored() -> None:
    conversation = [
        {"role": "assistant", "content": "thinking out loud"},
        {"role": "tool", "content": "<answer>\n1\n</answer>"},
        {"role": "assistant", "content": fmt("r", "3")},
    ]
    assert correctness([conversation], answer=["3"]) == [2.0]
    assert strict_format([conversation]) == [0.5]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-3", Decimal(-3)), ("+4", Decimal(4)), ("0", Decimal(0)), ("0.5", Decimal("0.5")), (".5", Decimal("0.5")),
        ("1,000", Decimal(1000)), ("12,345,678.9", Decimal("12345678.9")), ("$18", Decimal(18)),
        ("$1,000.00", Decimal(1000)), ("-$5", Decimal(-5)), ("$-5", Decimal(-5)), ("18.00", Decimal(18)),
        ("50%", Decimal(50)), ("18.", Decimal(18)), (" 42\n", Decimal(42)), ("007", Decimal(7)),
        ("", None), ("   ", None), ("eighteen", None), ("18 dollars", None), ("1,00", None), ("1000,000", None),
        ("1,0000", None), ("- 3", None), ("-$-5", None), ("+-5", None), ("1e5", None), ("inf", None), ("NaN", None),
        ("$", None), ("-", None), (".", None), ("18..", None), ("1.2.3", None), ("3/4", None), ("١٢", None),
        (None, None),
    ],
)
def test_parse_number(text: str | None, expected: Decimal | None) -> None:
    assert parse_number(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<answer>18</answer>", "18"),
        ("<answer>\n 18 \n</answer>", "18"),
        ("<answer>1</answer> then <answer>2</answer> trailing", "2"),
        ("<answer>\n</answer>", ""),
        ("<answer>open <answer>inner</answer>", "inner"),
        ("no tags at all", None),
        ("<answer>18", None),
        ("18</answer>", None),
        ("</answer><answer>", None),
        ("", None),
    ],
)
def test_extract_answer(text: str, expected: str | None) -> None:
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        ("1,000", "1000", True), ("$1,000.00", "1000", True), ("18.00", "18", True), ("-3", "-3.0", True),
        ("50%", "50", True), (Decimal("2.50"), "2.5", True), (7, "7", True),
        ("18", "18.5", False), ("-3", "3", False), ("eighteen", "18", False), (None, "18", False),
        ("", "", False), ("abc", "abc", False),
    ],
)
def test_numbers_equal(a, b, equal: bool) -> None:
    assert numbers_equal(a, b) is equal
    assert numbers_equal(b, a) is equal


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Natalia sold 48 + 24 = 72 clips.", "72"),
        ("She earned $1,000.00 in total.", "$1,000.00"),
        ("The temperature fell to -4 degrees", "-4"),
        ("x=-4", "-4"),
        ("pages 3-4", "4"),
        ("10-2=8", "8"),
        ("a loss of -$5 today", "-$5"),
        ("about 50% of them", "50%"),
        ("it weighs 18kg", "18"),
        ("costs US$5", "5"),
        ("7, 8 and 9.", "9"),
        ("half is .5 here", ".5"),
        ("version 1.2.3", None),
        ("1,00", None),
        ("x2", None),
        ("no digits here", None),
        ("", None),
    ],
)
def test_last_number(text: str, expected: str | None) -> None:
    assert last_number(text) == expected


def test_registry_names_match_function_names() -> None:
    assert set(REWARDS) == set(NAMES) == set(REWARD_RANGES)
    for name, fn in REWARDS.items():
        assert fn.__name__ == name
        assert getattr(rewards, name) is fn


def test_get_reward_funcs_keeps_order_and_takes_a_recipe_mapping() -> None:
    assert get_reward_funcs(["correctness", "xml_count"]) == [correctness, xml_count]
    recipe_rewards = {"xml_count": 1.0, "soft_format": 1.0, "strict_format": 1.0, "integer": 1.0, "correctness": 1.0}
    assert get_reward_funcs(recipe_rewards) == [xml_count, soft_format, strict_format, integer, correctness]


def test_unknown_reward_names_the_known_ones() -> None:
    with pytest.raises(UserError) as error:
        get_reward_funcs(["correctness", "corectness"])
    message = str(error.value)
    assert "corectness" in message
    for name in NAMES:
        assert name in message
    with pytest.raises(UserError):
        get_reward_funcs([])


def test_correctness_needs_gold_answers() -> None:
    with pytest.raises(UserError, match="answer"):
        correctness(["<answer>1</answer>"])
    with pytest.raises(ValueError):
        correctness(["<answer>1</answer>", "<answer>2</answer>"], answer=["1"])


def test_nothing_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    texts = [case[1] for case in CASES]
    for fn in REWARDS.values():
        fn(texts, answer=[case[2] for case in CASES])
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


# ---------------------------------------------------------------------------------------------------------
# Properties

TAGS = ("<reasoning>", "</reasoning>", "<answer>", "</answer>")
reasoning_text = st.text(min_size=1).filter(lambda t: not any(tag in t for tag in TAGS))
numbers_as_written = st.integers(min_value=-(10**15), max_value=10**15)
# Text made of format fragments, to reach the interesting corners more often than random characters do.
fragment_text = st.lists(
    st.sampled_from(list(TAGS) + ["\n", " ", "42", "-3.5", "$1,000", "x", "1,00", ".", "answer", "<", ">"]),
    max_size=30,
).map("".join)
any_text = st.one_of(st.text(), fragment_text)


@settings(deadline=None)
@given(reasoning=reasoning_text, number=numbers_as_written, final_newline=st.booleans())
def test_well_formed_completion_scores_full_marks(reasoning: str, number: int, final_newline: bool) -> None:
    text = fmt(reasoning, str(number))
    if not final_newline:
        text = text[:-1]
    assert strict_format([text]) == [0.5]
    assert soft_format([text]) == [0.5]
    assert xml_count([text]) == [0.5]
    assert integer([text]) == [0.5]
    assert correctness([text], answer=[str(number)]) == [2.0]
    assert correctness([text], answer=[str(number + 1)]) == [0.0]


@settings(deadline=None)
@given(number=numbers_as_written, cents=st.booleans(), dollar=st.booleans())
def test_any_way_of_writing_a_number_matches_its_gold(number: int, cents: bool, dollar: bool) -> None:
    written = f"{abs(number):,}" + (".00" if cents else "")
    written = ("-" if number < 0 else "") + ("$" if dollar else "") + written
    text = fmt("r", written)
    assert correctness([text], answer=[str(number)]) == [2.0]
    assert parse_number(written) == number


@settings(deadline=None)
@given(value=st.decimals(allow_nan=False, allow_infinity=False, places=3, min_value=-(10**9), max_value=10**9))
def test_decimals_round_trip(value: Decimal) -> None:
    written = f"{value:f}"
    assert parse_number(written) == value
    assert numbers_equal(written, f"{value:,f}")


@settings(deadline=None)
@given(text=any_text, gold=st.one_of(st.text(max_size=12), numbers_as_written.map(str)))
def test_rewards_stay_in_range_on_any_text(text: str, gold: str) -> None:
    for completion in (text, as_messages(text)):
        for name, fn in REWARDS.items():
            values = fn([completion], answer=[gold])
            low, high = REWARD_RANGES[name]
            assert len(values) == 1 and type(values[0]) is float
            assert low <= values[0] <= high, (name, text, values)


@settings(deadline=None)
@given(text=any_text)
def test_last_number_is_always_a_number(text: str) -> None:
    found = last_number(text)
    if found is not None:
        assert parse_number(found) is not None
    answer = extract_answer(text)
    if answer is not None:
        assert answer == answer.strip()


@settings(deadline=None)
@given(prefix=any_text, number=numbers_as_written)
def test_last_number_finds_a_number_written_last(prefix: str, number: int) -> None:
    assert parse_number(last_number(f"{prefix} {number}.")) == number
