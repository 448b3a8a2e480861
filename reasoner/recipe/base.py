"""Recipes that inherit: ``base: NAME`` takes another recipe and states only what differs.

The larger Qwen recipes are the 0.5B reference scaled up: the same data, prompt, rewards and GRPO settings,
another model, layout, batch and learning rate. Written out in full, six files would repeat each other and drift
apart (a comment about the 0.5B model ended up in the 14B recipe). So a recipe may name a ``base`` (a packaged
recipe name, or a path relative to the recipe's own folder) and hold only its differences.

Merging is by key: a mapping in the recipe merges into the base's mapping of the same key, key by key and
recursively; anything else (a value, a list, ``null``) replaces the base's value. A base may have a base itself;
a loop is refused. ``reasoner train --dry-run`` prints the fully resolved recipe.

A reward whose weight is ``null`` is removed (``reasoner.recipe.load``): ``rewards: {xml_count: null}`` in a child
drops the base's ``xml_count`` reward and its ``reward_args``, where weight 0 would still call and log it.

A relative path means what it meant in the file that states it: each layer's reward files are made absolute from
its own folder before merging (so a reward file named by a base in another folder is found beside that base).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reasoner.errors import UserError
from reasoner.recipe.files import read_yaml, recipe_path
from reasoner.rewards.loading import absolute_spec

BASE_KEY = "base"


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` laid over ``base``: mappings merge recursively, every other value replaces."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def find_base(name: str, child: Path) -> Path:
    """The file a ``base:`` names: a path next to the recipe first, then a packaged recipe name."""
    beside = (child.parent / name).expanduser()
    if beside.is_file():
        return beside
    for suffix in (".yaml", ".yml"):
        candidate = child.parent / f"{name}{suffix}"
        if candidate.is_file():
            return candidate
    return recipe_path(name)


def localize_rewards(layer: dict[str, Any], folder: Path) -> dict[str, Any]:
    """A recipe layer with its reward file specs (``path/to/file.py:function``) made absolute from ``folder``,
    the folder of the file that states them (a base recipe's rewards live beside the base, not the child)."""
    localized = dict(layer)
    for section in ("rewards", "reward_args"):
        if isinstance(layer.get(section), dict):
            localized[section] = {absolute_spec(str(spec), folder): value for spec, value in layer[section].items()}
    return localized


def resolve_base(path: Path) -> dict[str, Any]:
    """The recipe file at ``path`` with its chain of bases merged under it, each layer's reward files made absolute
    from its own folder."""
    chain = [path.resolve()]
    resolved = read_yaml(path)
    layers = [resolved]
    while BASE_KEY in layers[-1]:
        name = layers[-1][BASE_KEY]
        if not isinstance(name, str) or not name.strip():
            raise UserError(f"recipe {chain[-1].name}: 'base' must name a recipe (a packaged name or a path), got {name!r}")
        base_path = find_base(name, chain[-1]).resolve()
        if base_path in chain:
            loop = " -> ".join(p.name for p in [*chain, base_path])
            raise UserError(f"recipe bases form a loop ({loop}); remove one 'base' key")
        chain.append(base_path)
        layers.append(read_yaml(base_path))
    result: dict[str, Any] = {}
    for layer, layer_path in reversed(list(zip(layers, chain))):
        own = {k: v for k, v in layer.items() if k != BASE_KEY}
        result = merge(result, localize_rewards(own, layer_path.parent))
    return result
