"""Generated GSM8K-shaped word problems, for demos, tests and the tiny model's corpus: no download needed.

Rows are ``{"question": ..., "answer": "<steps>\\n#### <number>"}`` and every step carries GSM8K's
``<<expression=result>>`` annotation, so generated rows go through exactly the same reading as real GSM8K rows.
This is the package's one generator of arithmetic problems: the tiny test model learns its tokenizer from it too.
"""

from __future__ import annotations

import random

from reasoner.errors import UserError

__all__ = ["generate_problems"]

GOLD_MARKER = "####"

_PEOPLE = (
    ("Mia", "she", "her"), ("Liam", "he", "his"), ("Ava", "she", "her"), ("Noah", "he", "his"),
    ("Zoe", "she", "her"), ("Omar", "he", "his"), ("Lena", "she", "her"), ("Ravi", "he", "his"),
    ("Sofia", "she", "her"), ("Kenji", "he", "his"), ("Amara", "she", "her"), ("Diego", "he", "his"),
)
_ITEMS = ("apples", "marbles", "stickers", "pencils", "cookies", "cards", "shells", "stamps", "beads", "eggs")


def _problem_add(rng: random.Random) -> tuple[str, str, int]:
    name, pronoun, _ = rng.choice(_PEOPLE)
    item = rng.choice(_ITEMS)
    a, b = rng.randint(5, 90), rng.randint(2, 60)
    r = a + b
    question = (
        f"{name} has {a} {item}. {pronoun.capitalize()} buys {b} more {item} at the market. "
        f"How many {item} does {name} have now?"
    )
    return question, f"{name} has {a} + {b} = <<{a}+{b}={r}>>{r} {item} now.", r


def _problem_subtract(rng: random.Random) -> tuple[str, str, int]:
    name, pronoun, _ = rng.choice(_PEOPLE)
    item = rng.choice(_ITEMS)
    a = rng.randint(20, 200)
    b = rng.randint(1, a - 1)
    r = a - b
    question = (
        f"{name} had {a} {item}. {pronoun.capitalize()} gave {b} of them to a friend. "
        f"How many {item} does {name} have left?"
    )
    return question, f"{name} has {a} - {b} = <<{a}-{b}={r}>>{r} {item} left.", r


def _problem_multiply(rng: random.Random) -> tuple[str, str, int]:
    name, _, _ = rng.choice(_PEOPLE)
    item = rng.choice(_ITEMS)
    a, b = rng.randint(2, 25), rng.randint(3, 40)
    r = a * b
    question = f"{name} fills {a} boxes with {b} {item} each. How many {item} are in the boxes altogether?"
    return question, f"The boxes hold {a} * {b} = <<{a}*{b}={r}>>{r} {item}.", r


def _problem_divide(rng: random.Random) -> tuple[str, str, int]:
    name, _, _ = rng.choice(_PEOPLE)
    item = rng.choice(_ITEMS)
    k, r = rng.randint(2, 12), rng.randint(2, 30)
    total = k * r
    question = (
        f"{name} shares {total} {item} equally among {k} friends. How many {item} does each friend get?"
    )
    return question, f"Each friend gets {total} / {k} = <<{total}/{k}={r}>>{r} {item}.", r


def _problem_change(rng: random.Random) -> tuple[str, str, int]:
    name, _, _ = rng.choice(_PEOPLE)
    item = rng.choice(("notebooks", "sandwiches", "tickets", "plants", "mugs", "books"))
    q, p = rng.randint(2, 9), rng.randint(2, 25)
    cost = q * p
    bill = next(b for b in (10, 20, 50, 100, 200, 500) if b > cost)
    r = bill - cost
    question = (
        f"{name} buys {q} {item} for ${p} each and pays with a ${bill} bill. "
        f"How much change, in dollars, does {name} get?"
    )
    steps = (
        f"The {item} cost {q} * ${p} = $<<{q}*{p}={cost}>>{cost}.\n"
        f"{name} gets ${bill} - ${cost} = $<<{bill}-{cost}={r}>>{r} in change."
    )
    return question, steps, r


def _problem_earnings(rng: random.Random) -> tuple[str, str, int]:
    name, pronoun, _ = rng.choice(_PEOPLE)
    rate, hours, days = rng.randint(8, 30), rng.randint(2, 10), rng.randint(2, 30)
    per_day = rate * hours
    r = per_day * days
    question = (
        f"{name} earns ${rate} an hour and works {hours} hours a day. "
        f"How many dollars does {pronoun} earn in {days} days?"
    )
    steps = (
        f"In a day {name} earns {rate} * {hours} = $<<{rate}*{hours}={per_day}>>{per_day}.\n"
        f"In {days} days {pronoun} earns {per_day} * {days} = $<<{per_day}*{days}={r}>>{r}."
    )
    return question, steps, r


def _problem_bakery(rng: random.Random) -> tuple[str, str, int]:
    trays, per_tray, extra = rng.randint(2, 12), rng.randint(6, 24), rng.randint(5, 80)
    morning = trays * per_tray
    r = morning + extra
    question = (
        f"A bakery bakes {trays} trays of {per_tray} muffins in the morning and {extra} more muffins in the "
        "afternoon. How many muffins does it bake in all?"
    )
    steps = (
        f"In the morning it bakes {trays} * {per_tray} = <<{trays}*{per_tray}={morning}>>{morning} muffins.\n"
        f"In all it bakes {morning} + {extra} = <<{morning}+{extra}={r}>>{r} muffins."
    )
    return question, steps, r


def _problem_pages(rng: random.Random) -> tuple[str, str, int]:
    name, pronoun, _ = rng.choice(_PEOPLE)
    per_day, days = rng.randint(5, 40), rng.randint(2, 14)
    read = per_day * days
    total = read + rng.randint(1, 300)
    r = total - read
    question = (
        f"{name}'s book has {total} pages. {pronoun.capitalize()} reads {per_day} pages a day for {days} days. "
        "How many pages are left to read?"
    )
    steps = (
        f"{name} reads {per_day} * {days} = <<{per_day}*{days}={read}>>{read} pages.\n"
        f"There are {total} - {read} = <<{total}-{read}={r}>>{r} pages left."
    )
    return question, steps, r


def _problem_savings(rng: random.Random) -> tuple[str, str, int]:
    name, pronoun, possessive = rng.choice(_PEOPLE)
    weekly, weeks, saved = rng.randint(3, 25), rng.randint(2, 20), rng.randint(5, 120)
    missing = weekly * weeks
    price = saved + missing
    question = (
        f"{name} wants a bike that costs ${price}. {pronoun.capitalize()} has saved ${saved} and puts ${weekly} "
        f"into {possessive} savings every week. How many weeks until {pronoun} can buy the bike?"
    )
    steps = (
        f"{name} still needs {price} - {saved} = $<<{price}-{saved}={missing}>>{missing}.\n"
        f"That takes {missing} / {weekly} = <<{missing}/{weekly}={weeks}>>{weeks} weeks."
    )
    return question, steps, weeks


_TEMPLATES = (
    _problem_add, _problem_subtract, _problem_multiply, _problem_divide,
    _problem_change, _problem_earnings, _problem_bakery, _problem_pages, _problem_savings,
)



def generate_problems(n: int, seed: int) -> list[dict]:
    """``n`` GSM8K-shaped arithmetic word problems, the same for the same seed.

    Rows are ``{"question": ..., "answer": "<steps with <<a op b=c>> annotations>\\n#### <number>"}``;
    templates cover addition, subtraction, multiplication, exact division, money and two-step problems.
    """
    if n < 0:
        raise UserError(f"cannot generate {n} problems: dataset.num_generated must be a positive number")
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        question, steps, result = rng.choice(_TEMPLATES)(rng)
        rows.append({"question": question, "answer": f"{steps}\n{GOLD_MARKER} {result}"})
    return rows
