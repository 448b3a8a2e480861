"""``reasoner train --help`` lists every recipe key, with its doc line, type and default, from the schema."""

from __future__ import annotations

import pytest

from reasoner.recipe.keydocs import KEY_DOCS, schema_keys
from reasoner.train.run import parse_args


def test_every_recipe_key_has_one_doc_line_and_no_line_is_stale():
    keys = set(schema_keys())
    assert keys - set(KEY_DOCS) == set(), "recipe keys without a line in reasoner/recipe/keydocs.py"
    assert set(KEY_DOCS) - keys == set(), "lines in reasoner/recipe/keydocs.py for keys the schema no longer has"
    assert all(doc and "\n" not in doc for doc in KEY_DOCS.values())


def test_train_help_lists_every_key_with_its_type_and_default(capsys):
    with pytest.raises(SystemExit) as stop:
        parse_args(["--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    for key in schema_keys():
        assert f"  --{key} " in text, key
    assert "--generation.backend" in text and "one of transformers, vllm" in text
    assert "--eval.samples" in text and "default 1" in text
    assert "any TRL GRPOConfig field" in text and "--peft.<LoraConfig field>" in text
