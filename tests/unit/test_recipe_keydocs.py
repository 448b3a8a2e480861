"""One definition per recipe key: the section dataclasses' fields give validation, defaults, overrides and
``reasoner train --help`` (with its doc line, type and default) alike."""

from __future__ import annotations

import dataclasses

import pytest

from reasoner.errors import UserError
from reasoner.recipe import schema, sections
from reasoner.recipe.keydocs import schema_keys
from reasoner.recipe.load import load_recipe
from reasoner.train.run import parse_args


def help_text(capsys) -> str:
    with pytest.raises(SystemExit) as stop:
        parse_args(["--help"])
    assert stop.value.code == 0
    return capsys.readouterr().out


def test_every_field_of_every_section_is_a_documented_key():
    for section, section_type in schema.section_types().items():
        for field in dataclasses.fields(section_type):
            doc = field.metadata.get("doc")
            assert doc and "\n" not in doc, f"{section}.{field.name} has no one-line doc in its field's metadata"
    assert set(schema.sections()) >= {"model", "dataset", "answer", "grpo", "peft", "rewards", "reward_args"}
    assert "source" not in schema.top_level_keys()  # where the recipe was read from is no recipe key


def test_train_help_lists_every_key_with_its_type_and_default(capsys):
    text = help_text(capsys)
    for key in schema_keys():
        assert f"  --{key} " in text, key
    assert "--generation.backend" in text and "one of transformers, vllm" in text
    assert "--eval.samples" in text and "default 1" in text
    assert "--answer.format" in text and "one of gsm8k, number, math" in text
    assert "any TRL GRPOConfig field" in text and "--peft.<LoraConfig field>" in text


def test_the_loaded_defaults_are_the_fields_defaults():
    recipe = load_recipe("tiny-cpu")
    assert recipe.eval == sections.EvalSection(limit=20)  # tiny-cpu sets limit 20; the rest are defaults
    for key, spec in schema.section_keys(sections.ResourcesSection).items():
        assert getattr(sections.ResourcesSection(), key) == spec.default
    assert recipe.hub.push_repo is None and recipe.dataset.mix == []


@dataclasses.dataclass(frozen=True)
class TrackingWithAnExtraKey(sections.TrackingSection):
    """The tracking section with one more key, as a contributor would add it."""

    histogram_bins: int = sections.key(32, "bins of the reward histogram logged with the samples")


@pytest.fixture
def extra_key(monkeypatch):
    """Add ``tracking.histogram_bins`` to the recipe by adding the field, nothing else."""
    monkeypatch.setattr(sections, "TrackingSection", TrackingWithAnExtraKey)
    schema.section_keys.cache_clear()
    schema._recipe_fields.cache_clear()
    yield
    monkeypatch.undo()
    schema.section_keys.cache_clear()
    schema._recipe_fields.cache_clear()


def test_a_field_added_to_a_section_is_a_key_everywhere(extra_key, capsys):
    assert "--tracking.histogram_bins" in help_text(capsys)
    assert "bins of the reward histogram logged with the samples (an integer; default 32)" in help_text(capsys)
    assert load_recipe("tiny-cpu").tracking.histogram_bins == 32  # the default
    assert load_recipe("tiny-cpu", ["--tracking.histogram_bins", "8"]).tracking.histogram_bins == 8
    assert load_recipe("tiny-cpu", ["--histogram_bins", "16"]).tracking.histogram_bins == 16  # one section owns it
    with pytest.raises(UserError, match=r"recipe key 'tracking.histogram_bins' must be an integer, got 'many'"):
        load_recipe("tiny-cpu", ["--tracking.histogram_bins", "many"])
    with pytest.raises(UserError, match=r"did you mean 'tracking.histogram_bins'\?"):
        load_recipe("tiny-cpu", ["--tracking.histogram_bin", "8"])


def test_without_the_field_the_key_is_unknown(capsys):
    assert "histogram_bins" not in help_text(capsys)
    with pytest.raises(UserError, match="unknown recipe key 'tracking.histogram_bins'"):
        load_recipe("tiny-cpu", ["--tracking.histogram_bins", "8"])


def test_types_come_from_the_annotations():
    specs = schema.section_keys(sections.EvalSection)
    assert specs["holdout"].types == (float, int, type(None)) and specs["limit"].types == (int, type(None))
    assert schema.section_keys(sections.DatasetSection)["mix"].types == (list,)
    with pytest.raises(UserError, match=r"recipe key 'eval.holdout' must be a number or null, got 'half'"):
        load_recipe("tiny-cpu", ["--eval.holdout", "half"])
