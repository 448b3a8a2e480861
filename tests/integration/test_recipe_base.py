"""Recipes that inherit (``base:``): merge rules, chains, loops, and the packaged Qwen recipes as differences."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from reasoner.errors import UserError
from reasoner.recipe.load import load_recipe
from reasoner.recipe.files import packaged_recipes, recipe_path
from reasoner.recipe.base import merge

ROOT = Path(__file__).resolve().parents[2]
# The GSM8K size series: each is the 0.5B reference with another size (a recipe for another task restates its task).
QWEN = [name for name in packaged_recipes() if name.startswith("qwen2.5-") and name.endswith("-gsm8k")]


def test_mappings_merge_and_everything_else_replaces():
    base = {"model": {"id": "a", "dtype": "bfloat16"}, "prompt": {"few_shot": [1, 2]}, "name": "base"}
    child = {"model": {"id": "b"}, "prompt": {"few_shot": []}, "name": "child", "grpo": {"seed": 1}}
    assert merge(base, child) == {"model": {"id": "b", "dtype": "bfloat16"}, "prompt": {"few_shot": []},
                                  "name": "child", "grpo": {"seed": 1}}
    assert base["model"]["id"] == "a"  # the base is not changed in place
    assert merge({"dataset": {"limit": 5}}, {"dataset": {"limit": None}}) == {"dataset": {"limit": None}}


def test_a_chain_of_bases_resolves_nearest_last(tmp_path):
    (tmp_path / "grand.yaml").write_text(yaml.safe_dump({"base": "tiny-cpu", "grpo": {"seed": 7, "max_steps": 5}}))
    (tmp_path / "child.yaml").write_text(yaml.safe_dump({"base": "grand.yaml", "name": "child", "grpo": {"max_steps": 9}}))
    recipe = load_recipe(str(tmp_path / "child.yaml"))
    assert recipe.name == "child"
    assert recipe.grpo["max_steps"] == 9 and recipe.grpo["seed"] == 7
    assert recipe.grpo["learning_rate"] == load_recipe("tiny-cpu").grpo["learning_rate"]
    # Overrides still apply last.
    assert load_recipe(str(tmp_path / "child.yaml"), ["--seed", "3"]).grpo["seed"] == 3


def test_loops_and_bad_bases_are_refused_in_one_line(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\nname: a\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\nname: b\n")
    with pytest.raises(UserError, match=r"recipe bases form a loop \(a.yaml -> b.yaml -> a.yaml\)"):
        load_recipe(str(tmp_path / "a.yaml"))
    (tmp_path / "c.yaml").write_text("base: no-such-recipe\nname: c\n")
    with pytest.raises(UserError, match="recipe 'no-such-recipe' not found"):
        load_recipe(str(tmp_path / "c.yaml"))
    (tmp_path / "d.yaml").write_text("base: [1]\nname: d\n")
    with pytest.raises(UserError, match="'base' must name a recipe"):
        load_recipe(str(tmp_path / "d.yaml"))


def test_a_reward_file_named_by_a_base_is_found_beside_that_base(tmp_path, monkeypatch):
    team, mine = tmp_path / "team", tmp_path / "mine"
    team.mkdir()
    mine.mkdir()
    (team / "house_rewards.py").write_text(
        "def brevity(completions, **kwargs):\n    return [0.0 for _ in completions]\n")
    (team / "base.yaml").write_text(yaml.safe_dump(
        {"base": "tiny-cpu", "rewards": {"house_rewards.py:brevity": 0.5}, "reward_args": {}}))
    (mine / "run.yaml").write_text(yaml.safe_dump({"base": "../team/base.yaml", "name": "mine"}))
    (mine / "house_rewards.py").write_text("raise SystemExit('a file of the same name beside the child')\n")
    monkeypatch.chdir(mine)  # the working folder and the child's folder hold a decoy of the same name
    recipe = load_recipe(str(mine / "run.yaml"))
    spec = f"{(team / 'house_rewards.py').resolve()}:brevity"
    assert recipe.rewards[spec] == 0.5
    # A child stating the same file by its absolute path reweighs that reward rather than adding a second one.
    (mine / "reweighted.yaml").write_text(yaml.safe_dump({"base": "../team/base.yaml", "name": "reweighted",
                                                          "rewards": {f"{team}/house_rewards.py:brevity": 2.0}}))
    reweighted = load_recipe(str(mine / "reweighted.yaml")).rewards
    assert reweighted[spec] == 2.0 and [k for k in reweighted if "brevity" in k] == [spec]


@pytest.mark.parametrize("name", [n for n in QWEN if n != "qwen2.5-0.5b-gsm8k"])
def test_larger_qwen_recipes_state_only_their_differences(name):
    text = yaml.safe_load(recipe_path(name).read_text())
    reference = load_recipe("qwen2.5-0.5b-gsm8k")
    assert text["base"] == "qwen2.5-0.5b-gsm8k"
    for section in ("dataset", "prompt", "rewards", "eval"):  # what the sizes share is never restated
        assert section not in text, f"{name} restates {section}"
    recipe = load_recipe(name)
    assert recipe.prompt == reference.prompt and recipe.rewards == reference.rewards
    for section, values in text.items():  # every key a recipe states differs from the reference
        if isinstance(values, dict):
            same = [k for k, v in values.items() if reference.to_dict()[section].get(k) == v]
            assert not same, f"{name} restates {section}.{same}"
    assert "0.5B model" not in recipe_path(name).read_text()


def test_dry_run_prints_the_resolved_recipe(tmp_path):
    """The dry run reads the recipe's hub data set as training does (pinned through HF_ENDPOINT), so it runs
    against an embedded hub holding a few GSM8K rows as openai/gsm8k."""
    import os

    from huggingface_hub import HfApi, constants

    from reasoner_hub.server import HubServer
    from shared_data import GSM8K

    constants.HF_HUB_DISABLE_XET = True
    rows = "".join(line + "\n" for line in (GSM8K / "train.jsonl").read_text().splitlines()[:8])
    with HubServer(tmp_path / "bucket") as server:
        api = HfApi(endpoint=server.url, token="hf_writer_token_for_tests")
        api.create_repo("openai/gsm8k", repo_type="dataset")
        commit = api.upload_file(repo_id="openai/gsm8k", repo_type="dataset", path_or_fileobj=rows.encode(),
                                 path_in_repo="train.jsonl").oid
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
        env.update(HF_ENDPOINT=server.url, HF_HUB_DISABLE_XET="1", HF_HOME=str(tmp_path / "hf"), NO_PROXY="*",
                   PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
        result = subprocess.run([sys.executable, "-m", "reasoner.cli", "train", "--recipe", "qwen2.5-14b-gsm8k",
                                 "--dry-run"], capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stderr
    printed = yaml.safe_load(result.stdout)
    assert "base" not in printed
    assert printed["model"]["id"] == "Qwen/Qwen2.5-14B-Instruct"
    assert printed["rewards"] == load_recipe("qwen2.5-0.5b-gsm8k").rewards  # inherited, written out
    assert printed["dataset"]["id"] == "openai/gsm8k" and printed["grpo"]["beta"] == 0.04
    assert printed == load_recipe("qwen2.5-14b-gsm8k").to_dict()
    assert f"# data set openai/gsm8k@{commit}, split train:" in result.stdout  # the pinned commit
    assert "# rows: kept 8 of 8 rows" in result.stdout
    assert "# rewards (final, name: weight): xml_count: 1, soft_format: 1, strict_format: 1, integer: 1, " \
           "correctness: 1" in result.stdout


def test_a_null_reward_removes_the_base_reward_and_its_arguments(tmp_path):
    (tmp_path / "team.yaml").write_text(yaml.safe_dump({
        "base": "tiny-cpu", "rewards": {"get_soft_overlong_punishment": 0.5},
        "reward_args": {"get_soft_overlong_punishment": {"max_completion_len": 16, "soft_punish_cache": 4}}}))
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump({
        "base": "team.yaml", "rewards": {"xml_count": None, "get_soft_overlong_punishment": None, "integer": 0}}))
    team = load_recipe(str(tmp_path / "team.yaml"))
    assert "xml_count" in team.rewards and "get_soft_overlong_punishment" in team.reward_args
    recipe = load_recipe(str(tmp_path / "mine.yaml"))
    assert list(recipe.rewards) == ["soft_format", "strict_format", "integer", "correctness"]
    assert recipe.rewards["integer"] == 0.0  # weight 0 keeps the reward (it is still called and logged)
    assert recipe.reward_args == {}
    # The command line removes the same way, and removing every reward is refused in one line.
    assert "correctness" not in load_recipe(str(tmp_path / "mine.yaml"), ["--rewards.correctness", "null"]).rewards
    everything = [arg for name in recipe.rewards for arg in (f"--rewards.{name}", "null")]
    with pytest.raises(UserError, match=r"'rewards' removes every reward \(.*\): keep at least one") as error:
        load_recipe(str(tmp_path / "mine.yaml"), everything)
    assert "\n" not in str(error.value)


def test_a_top_level_typo_gets_a_did_you_mean(tmp_path, capsys):
    from reasoner.cli import main

    (tmp_path / "typo.yaml").write_text("base: tiny-cpu\nmodle:\n  id: org/m\n")
    assert main(["train", "--recipe", str(tmp_path / "typo.yaml"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown recipe key 'modle' in typo.yaml: did you mean 'model'?")
    assert len(err.strip().splitlines()) == 1
    (tmp_path / "flat.yaml").write_text("base: tiny-cpu\nlearning_rate: 1.0e-5\n")
    with pytest.raises(UserError, match="recipe key 'learning_rate' in flat.yaml is at the top level, but it belongs "
                                        "in a section: move it under grpo:"):
        load_recipe(str(tmp_path / "flat.yaml"))
