"""Recipe parsing, overrides and every validation error: one line, the key named, the fix given, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from reasoner.errors import UserError
from reasoner.recipe.load import load_recipe
from reasoner.recipe.files import packaged_recipes
from reasoner.recipe.overrides import parse_overrides


def test_packaged_recipes_load_and_validate():
    names = packaged_recipes()
    assert {"qwen2.5-0.5b-gsm8k", "tiny-cpu"} <= set(names)
    for name in names:
        recipe = load_recipe(name)
        assert recipe.name == name
        assert recipe.model.id and recipe.grpo["output_dir"]
        assert set(recipe.rewards) <= {"correctness", "integer", "strict_format", "soft_format", "xml_count", "brevity",
                                     "get_soft_overlong_punishment"}  # TRL's DAPO reward (qwen2.5-7b-math)


def test_reference_recipe_states_what_trl_1x_changed():
    """TRL 1.x changed beta, loss_type, vllm_mode and bf16 defaults: the reference recipe states each value."""
    recipe = load_recipe("qwen2.5-0.5b-gsm8k")
    g = recipe.grpo
    assert g["learning_rate"] == 5e-6 and g["adam_beta1"] == 0.9 and g["adam_beta2"] == 0.99
    assert g["weight_decay"] == 0.1 and g["warmup_steps"] == 0.1 and g["lr_scheduler_type"] == "cosine"
    assert g["bf16"] is True and g["per_device_train_batch_size"] == 16 and g["gradient_accumulation_steps"] == 4
    assert g["num_generations"] == 16 and g["max_completion_length"] == 200 and g["num_train_epochs"] == 1
    assert g["save_steps"] == 100 and g["max_grad_norm"] == 0.1
    assert "beta" in g and "loss_type" in g and "scale_rewards" in g
    assert recipe.generation.backend == "vllm" and recipe.generation.placement == "auto"
    assert recipe.dataset.max_prompt_tokens == 256
    assert recipe.model.id == "Qwen/Qwen2.5-0.5B-Instruct"
    assert recipe.dataset.id == "openai/gsm8k" and recipe.dataset.config == "main"
    assert recipe.hub.repo_id == "reasoner/Qwen-0.5B-GRPO-gsm8k" and recipe.hub.push is True
    assert recipe.rewards == {"xml_count": 1.0, "soft_format": 1.0, "strict_format": 1.0, "integer": 1.0, "correctness": 1.0}


def test_overrides_reach_the_right_section():
    recipe = load_recipe("tiny-cpu", ["--max_steps", "7", "--output_dir=/tmp/x", "--model.id", "org/m",
                                      "--repo_id", "org/out", "--learning_rate", "5e-6", "--rewards.correctness", "3"])
    assert recipe.grpo["max_steps"] == 7
    assert recipe.grpo["output_dir"] == "/tmp/x"
    assert recipe.model.id == "org/m"
    assert recipe.hub.repo_id == "org/out"
    assert recipe.grpo["learning_rate"] == pytest.approx(5e-6)  # YAML reads "5e-6" as text: coerced
    assert recipe.rewards["correctness"] == 3.0


def test_yes_no_on_off_stay_strings():
    """YAML 1.1 reads no/yes/on/off as booleans; TRL's save_strategy 'no' must stay a string."""
    recipe = load_recipe("tiny-cpu", ["--save_strategy", "no", "--run_name", "on", "--hub.push", "false"])
    assert recipe.grpo["save_strategy"] == "no" and recipe.grpo["run_name"] == "on"
    assert recipe.hub.push is False


def test_parse_overrides_forms():
    assert parse_overrides(["--a", "1", "--b=2", "--flag"]) == [("a", "1"), ("b", "2"), ("flag", "true")]
    with pytest.raises(UserError, match="--key value"):
        parse_overrides(["stray"])


def test_list_valued_keys_take_a_comma_list_or_several_values(tmp_path):
    from reasoner.train.run import build_grpo_config

    assert parse_overrides(["--report_to", "a", "b", "--x", "1"]) == [("report_to", ["a", "b"]), ("x", "1")]
    for args in (["--report_to", "wandb,tensorboard"], ["--report_to", "wandb", "tensorboard"],
                 ["--report_to=wandb, tensorboard"], ["--report_to", "[wandb, tensorboard]"]):
        recipe = load_recipe("tiny-cpu", [*args, "--max_steps", "2"])
        assert recipe.grpo["report_to"] == ["wandb", "tensorboard"] and recipe.grpo["max_steps"] == 2, args
    assert build_grpo_config(recipe).report_to == ["wandb", "tensorboard"]
    assert load_recipe("tiny-cpu", ["--report_to", "tensorboard"]).grpo["report_to"] == "tensorboard"
    # A list-only GRPOConfig key takes one name as a list of one; a recipe file may write the comma list too.
    assert load_recipe("tiny-cpu", ["--include_for_metrics", "inputs"]).grpo["include_for_metrics"] == ["inputs"]
    path = write_recipe(tmp_path, lambda data: data["grpo"].update(report_to="tensorboard,wandb"))
    assert load_recipe(str(path)).grpo["report_to"] == ["tensorboard", "wandb"]
    # Recipe sections that hold lists take several values the same way.
    choice = load_recipe("tiny-cpu", ["--dataset.choice_columns", "A", "B", "--answer.format", "choice"])
    assert choice.dataset.choice_columns == ["A", "B"]


def write_recipe(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load(Path(load_recipe("tiny-cpu").source).read_text())
    mutate(data)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["--no-such-key", "1"], "unknown recipe key 'no-such-key'"),
        (["--max-step", "3"], "did you mean 'max_steps'"),
        (["--learning_rate", "fast"], "'learning_rate' must be a number"),
        (["--max_steps", "1.5"], "'max_steps' must be an integer"),
        (["--num_generations", "3"], "not divisible by num_generations 3"),
        (["--num_generations", "1", "--per_device_train_batch_size", "1"], "use 2 or more"),
        (["--generation.backend", "tensorrt"], "use one of: transformers, vllm"),
        (["--model.dtype", "fp8"], "use one of"),
        (["--hub.push", "true", "--hub.repo_id", "null"], "hub.repo_id is empty"),
        (["--rewards.kindness", "1"], "unknown reward 'kindness'"),
        (["--rewards.correctness", "high"], "must be a number"),
        (["--use_vllm", "true"], "set from generation.backend"),
        (["--hub_token", "x"], "HF_TOKEN"),
        (["--hub.pushh", "true"], "unknown recipe key"),
        (["--split", "test"], "ambiguous"),
    ],
)
def test_validation_errors(overrides, message):
    with pytest.raises(UserError) as info:
        load_recipe("tiny-cpu", overrides)
    text = str(info.value)
    assert message in text
    assert "\n" not in text


def test_malformed_yaml_names_the_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  id: tiny\ngrpo: [unclosed\n")
    with pytest.raises(UserError, match=r"not valid YAML at line \d+"):
        load_recipe(str(bad))


def test_unknown_section_and_missing_recipe(tmp_path):
    path = write_recipe(tmp_path, lambda d: d.update(trainer={"x": 1}))
    with pytest.raises(UserError, match="unknown recipe key 'trainer'"):
        load_recipe(str(path))
    with pytest.raises(UserError, match="did you mean 'tiny-cpu'"):
        load_recipe("tiny-cpuu")


def test_batch_layout_counts_the_launcher_world_size(monkeypatch):
    """4 completions per device on 3 processes is 12: not whole groups of 8."""
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(UserError, match=r"4 x 3 training processes"):
        load_recipe("tiny-cpu", ["--num_generations", "8"])
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert load_recipe("tiny-cpu", ["--num_generations", "8"]).grpo["num_generations"] == 8


def test_few_shot_shape_is_checked(tmp_path):
    path = write_recipe(tmp_path, lambda d: d["prompt"].update(few_shot=[{"question": "q"}]))
    with pytest.raises(UserError, match=r"few_shot\[0\]"):
        load_recipe(str(path))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reasoner.cli", *args], capture_output=True, text=True, timeout=120)


def test_cli_refuses_unknown_key_with_exit_2_and_one_line():
    result = run_cli("train", "--recipe", "qwen2.5-0.5b-gsm8k", "--no-such-key", "1")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["error: unknown recipe key 'no-such-key': it is neither a recipe key nor a TRL GRPOConfig field; "
                     "see the packaged recipes for the valid keys"]
    assert "Traceback" not in result.stderr


def test_cli_refuses_indivisible_batch_with_exit_2(tmp_path):
    path = write_recipe(tmp_path, lambda d: d["grpo"].update(num_generations=3))
    result = run_cli("train", "--recipe", str(path))
    assert result.returncode == 2
    assert "not divisible by num_generations 3" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
