"""prompt.chat_template: Jinja text or a file beside the recipe, read and checked when the recipe loads."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from reasoner.errors import UserError
from reasoner.recipe.chattemplate import read_chat_template
from reasoner.recipe.load import load_recipe

TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}<|assistant|>"


def test_text_is_kept_and_a_file_is_read_relative_to_the_recipe(tmp_path):
    assert read_chat_template(TEMPLATE, tmp_path) == TEMPLATE
    (tmp_path / "think.jinja").write_text(TEMPLATE)
    assert read_chat_template("think.jinja", tmp_path) == TEMPLATE
    assert read_chat_template(None, tmp_path) is None


@pytest.mark.parametrize("value, words", [
    ("missing.jinja", "is neither Jinja text nor a file"),
    ("{% for m in messages %}{{ m }}", "is not a valid Jinja template"),
])
def test_a_bad_template_is_one_line(value, words, tmp_path):
    with pytest.raises(UserError, match=words) as caught:
        read_chat_template(value, tmp_path)
    assert "\n" not in str(caught.value)


def test_a_recipe_holds_the_template_text_it_runs_with(tmp_path):
    (tmp_path / "r1.jinja").write_text(TEMPLATE)
    recipe_file = tmp_path / "recipe.yaml"
    recipe_file.write_text(yaml.safe_dump({"base": "tiny-cpu", "prompt": {"chat_template": "r1.jinja"}}))
    recipe = load_recipe(str(recipe_file))
    assert recipe.prompt.chat_template == TEMPLATE
    # the recipe a run writes carries the text itself, so it loads anywhere
    written = tmp_path / "elsewhere" / "recipe.yaml"
    written.parent.mkdir()
    written.write_text(recipe.to_yaml())
    assert load_recipe(str(written)).prompt.chat_template == TEMPLATE
    assert load_recipe("tiny-cpu").prompt.chat_template is None
    assert Path(recipe.source) == recipe_file
