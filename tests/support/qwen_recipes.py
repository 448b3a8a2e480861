"""Qwen2.5 recipes by size for the planner tests: the packaged one where it ships, else the 0.5B one resized."""

from __future__ import annotations

from reasoner.recipe.load import Recipe, load_recipe
from reasoner.recipe.files import packaged_recipes


def qwen_recipe(size: str, **extra: str) -> Recipe:
    """The packaged recipe for a Qwen2.5 size when it ships, else the 0.5B recipe with that model."""
    name = f"qwen2.5-{size}-gsm8k"
    overrides = list(extra.items())
    if name in packaged_recipes():
        return load_recipe(name, overrides) if overrides else load_recipe(name)
    return load_recipe("qwen2.5-0.5b-gsm8k", [("model.id", f"Qwen/Qwen2.5-{size[:-1]}B-Instruct"), *overrides])
