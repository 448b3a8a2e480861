"""Rewards beyond the built-in ones: a file by path, a module by import path, TRL's own by name, and each way a
user reward can be wrong, refused in one line that names the reward and the fix (before training where it can
be checked, and during training when a later batch breaks it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from reasoner.data import prepare_dataset
from reasoner.errors import UserError
from reasoner.recipe.load import load_recipe
from reasoner.rewards import REWARDS, get_reward_funcs, resolve_reward
from reasoner.rewards.trial import try_rewards

ROOT = Path(__file__).resolve().parents[2]
FORMATTED = "<reasoning>\nr\n</reasoning>\n<answer>\n4\n</answer>\n"

REWARD_FILE = '''
from reasoner.rewards import completion_text, extract_answer

def brevity(completions, **kwargs):
    """1.0 for an empty completion, less for longer ones."""
    return [1.0 / (1 + len(completion_text(c))) for c in completions]

def has_answer(completions, answer, **kwargs):
    return [1.0 if extract_answer(completion_text(c)) == str(a) else 0.0 for c, a in zip(completions, answer)]

def no_kwargs(completions):
    return [0.0 for _ in completions]

def positional_only(completions, /, **kwargs):
    return [0.0 for _ in completions]

def one_value(completions, **kwargs):
    return [1.0]

def text_value(completions, **kwargs):
    return "good"

def words(completions, **kwargs):
    return ["good" for _ in completions]

def explodes(completions, **kwargs):
    raise KeyError("difficulty")

def needs_column(completions, difficulty, **kwargs):
    return [float(d) for d in difficulty]

def breaks_later(completions, trainer_state=None, **kwargs):
    if trainer_state is not None and trainer_state.global_step >= 1:
        raise ValueError("score table missing for step %d" % trainer_state.global_step)
    return [0.5 for _ in completions]

NOT_A_FUNCTION = 3
'''


@pytest.fixture
def reward_dir(tmp_path: Path) -> Path:
    (tmp_path / "my_rewards.py").write_text(REWARD_FILE, encoding="utf-8")
    return tmp_path


def write_recipe(folder: Path, rewards: dict, reward_args: dict | None = None, **grpo) -> Path:
    data = yaml.safe_load(Path(load_recipe("tiny-cpu").source).read_text(encoding="utf-8"))
    data["rewards"] = rewards
    if reward_args:
        data["reward_args"] = reward_args
    data["grpo"].update(grpo)
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def one_line_error(fn, *args, **kwargs) -> str:
    with pytest.raises(UserError) as error:
        fn(*args, **kwargs)
    text = str(error.value)
    assert "\n" not in text, text
    return text


# --- loading ----------------------------------------------------------------------------------------------


def test_a_reward_file_by_path_relative_to_the_recipe(reward_dir, tmp_path_factory, monkeypatch):
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))  # the recipe's folder is found, not the current one
    recipe = load_recipe(str(write_recipe(reward_dir, {"my_rewards.py:brevity": 1.0, "correctness": 2.0})))
    key = f"{reward_dir.resolve() / 'my_rewards.py'}:brevity"
    assert recipe.rewards == {key: 1.0, "correctness": 2.0}  # a saved copy of the recipe finds it from anywhere
    funcs = get_reward_funcs(recipe.rewards)
    assert [f.__name__ for f in funcs] == ["brevity", "correctness"]  # TRL logs rewards/brevity/mean
    assert funcs[0](completions=["", "abc"]) == [1.0, 0.25]
    assert funcs[1] is REWARDS["correctness"]


def test_a_reward_file_relative_to_the_current_folder_or_absolute(reward_dir, monkeypatch):
    monkeypatch.chdir(reward_dir)
    assert resolve_reward("my_rewards.py:brevity")(completions=["x"]) == [0.5]
    absolute = resolve_reward(f"{reward_dir / 'my_rewards.py'}:has_answer")
    assert absolute(completions=[FORMATTED, "4"], answer=["4", "4"]) == [1.0, 0.0]


def test_a_reward_by_module_import_path(tmp_path, monkeypatch):
    package = tmp_path / "team_rewards"
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "scoring.py").write_text(REWARD_FILE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    fn = resolve_reward("team_rewards.scoring:brevity")
    assert fn.__name__ == "brevity" and fn(completions=[[{"role": "assistant", "content": "abc"}]]) == [0.25]
    recipe = load_recipe(str(write_recipe(tmp_path, {"team_rewards.scoring:has_answer": 1.0})))
    assert list(recipe.rewards) == ["team_rewards.scoring:has_answer"]


def test_trl_rewards_by_name_with_the_gold_answer_as_solution():
    think = resolve_reward("think_format_reward")
    conversation = [[{"role": "assistant", "content": "<think>\nhmm\n</think>\n42"}], [{"role": "assistant", "content": "42"}]]
    assert think(completions=conversation) == [1.0, 0.0]
    accuracy = resolve_reward("accuracy_reward")  # TRL reads the gold answer as `solution`; ours is `answer`
    boxed = [[{"role": "assistant", "content": r"so \boxed{\frac{1}{2}}"}], [{"role": "assistant", "content": r"\boxed{3}"}]]
    assert accuracy(completions=boxed, answer=["0.5", "0.5"]) == [1.0, 0.0]
    assert resolve_reward("trl.rewards:think_format_reward")(completions=conversation) == [1.0, 0.0]


def test_trl_factories_take_reward_args(tmp_path):
    path = write_recipe(tmp_path, {"correctness": 1.0, "get_soft_overlong_punishment": 1.0},
                        {"get_soft_overlong_punishment": {"max_completion_len": 10, "soft_punish_cache": 5}})
    recipe = load_recipe(str(path))
    funcs = get_reward_funcs(recipe.rewards, args=recipe.reward_args)
    assert funcs[1](completions=["a", "b", "c"], completion_ids=[[1] * 4, [1] * 8, [1] * 12]) == [0.0, -0.6, -1.0]
    text = one_line_error(load_recipe, str(write_recipe(tmp_path, {"get_soft_overlong_punishment": 1.0})))
    assert "is a TRL factory" in text and "reward_args.get_soft_overlong_punishment" in text
    text = one_line_error(load_recipe, str(write_recipe(tmp_path, {"get_soft_overlong_punishment": 1.0},
                                                        {"get_soft_overlong_punishment": {"max_len": 3}})))
    assert "could not be built from reward_args" in text and "unexpected keyword argument 'max_len'" in text


# --- each user-reward error, checked before training -------------------------------------------------------


@pytest.mark.parametrize("spec, expected", [
    ("no_such_package.scoring:brevity", ["reward 'no_such_package.scoring:brevity'", "cannot import no_such_package.scoring",
                                         "ModuleNotFoundError", "install it, put it on PYTHONPATH"]),
    ("missing.py:brevity", ["reward 'missing.py:brevity'", "file missing.py not found", "fix the path"]),
    ("my_rewards.py:brevty", ["has no 'brevty'", "it defines: ", "brevity", "fix the name after the colon"]),
    ("my_rewards.py:NOT_A_FUNCTION", ["is a int, not a function", "fn(completions, **kwargs)"]),
    ("my_rewards.py:no_kwargs", ["must accept **kwargs", "def no_kwargs(completions, **kwargs)"]),
    ("my_rewards.py:positional_only", ["takes completions positionally only", "by keyword"]),
    ("corectness", ["unknown reward 'corectness'", "did you mean 'correctness'?", "think_format_reward"]),
])
def test_reward_errors_found_when_the_recipe_loads(spec, expected, reward_dir):
    text = one_line_error(load_recipe, str(write_recipe(reward_dir, {spec: 1.0})))
    for part in expected:
        assert part in text, (part, text)


def test_a_reward_file_that_does_not_import(tmp_path):
    (tmp_path / "broken.py").write_text("def fine(completions, **kwargs):\n    return [0.0]\ndef (:\n")
    text = one_line_error(load_recipe, str(write_recipe(tmp_path, {"broken.py:fine": 1.0})))
    assert "broken.py:fine'" in text and "does not import (SyntaxError" in text and "fix that file" in text
    (tmp_path / "broken.py").write_text("import no_such_dependency\n")
    text = one_line_error(load_recipe, str(write_recipe(tmp_path, {"broken.py:fine": 1.0})))
    assert "does not import (ModuleNotFoundError: No module named 'no_such_dependency')" in text


@pytest.fixture(scope="module")
def prepared():
    rows = [{"question": "What is 2 + 2?", "answer": "#### 4"}, {"question": "What is 3 + 3?", "answer": "#### 6"}]
    return prepare_dataset(rows)[0]


@pytest.mark.parametrize("name, expected", [
    ("one_value", "returned 1 values for 4 completions: return exactly one float per completion"),
    ("text_value", "returned str, not a list: return one float per completion"),
    ("words", "returned a str ('good') among its values: return floats"),
    ("explodes", "raised KeyError: 'difficulty' on a batch of 4 completions: fix the function"),
    ("needs_column", "needs the keyword 'difficulty', which no data set column provides"),
])
def test_reward_errors_found_on_the_trial_batch(name, expected, reward_dir, prepared):
    spec = f"{reward_dir / 'my_rewards.py'}:{name}"
    funcs = get_reward_funcs([spec, "correctness"])
    text = one_line_error(try_rewards, funcs, [spec, "correctness"], prepared)
    assert text.startswith(f"reward '{spec}'") and expected in text, text


def test_the_trial_batch_is_shaped_like_trl_calls(reward_dir, prepared):
    seen = {}

    def spy(completions, **kwargs):
        seen.update(kwargs, completions=completions)
        return [0.0] * len(completions)

    try_rewards([spy, REWARDS["correctness"]], ["spy", "correctness"], prepared)
    assert {"prompts", "completion_ids", "answer", "compare_as", "trainer_state", "log_extra", "log_metric"} <= set(seen)
    assert len(seen["completions"]) == 4 and seen["completions"][0][0]["role"] == "assistant"
    assert seen["answer"] == ["4", "4", "6", "6"] and seen["trainer_state"].global_step == 0


# --- through `reasoner train` -------------------------------------------------------------------------------


def train(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1",
               PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "reasoner.cli", "train", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def assert_one_error_line(result: subprocess.CompletedProcess, *parts: str) -> str:
    text = result.stdout + result.stderr
    assert result.returncode == 2, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    errors = [line for line in text.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0] == result.stderr.strip().splitlines()[-1], errors
    for part in parts:
        assert part in errors[0], (part, errors[0])
    return errors[0]


def test_train_refuses_a_broken_reward_before_the_model_loads(reward_dir, tmp_path):
    out = tmp_path / "out"
    recipe = write_recipe(reward_dir, {"correctness": 1.0, "my_rewards.py:one_value": 1.0})
    result = train(["--recipe", str(recipe), "--output_dir", str(out)], tmp_path)
    assert_one_error_line(result, "my_rewards.py:one_value'", "returned 1 values for 4 completions")
    assert "step 1/" not in result.stdout + result.stderr and not out.exists()


def test_a_reward_that_breaks_during_training_stops_the_run_in_one_line(reward_dir, tmp_path):
    out = tmp_path / "out"
    recipe = write_recipe(reward_dir, {"correctness": 1.0, "my_rewards.py:breaks_later": 1.0})
    result = train(["--recipe", str(recipe), "--max_steps", "3", "--output_dir", str(out)], tmp_path)
    assert_one_error_line(result, "my_rewards.py:breaks_later'", "raised ValueError: score table missing for step 1",
                          "fix the function")
    assert "step 1/3" in result.stdout + result.stderr  # the first step trained: the check ran on a later batch
