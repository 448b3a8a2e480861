"""Command-line overrides of a recipe: ``--key value`` pairs, each mapped to the one recipe key it names.

A bare GRPOConfig key (``--max_steps 3``) goes to ``grpo``; a dotted key (``--model.id ORG/NAME``) to its section;
a key that two sections share must be written dotted. Values are read as YAML, as in the recipe file.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import yaml

from reasoner.errors import UserError
from reasoner.recipe.files import yaml_load
from reasoner.recipe.schema import SECTION_SCHEMAS, TOP_LEVEL_SCALARS, unknown_key


def parse_overrides(argv: Iterable[str]) -> list[tuple[str, str]]:
    """Turn ``--key value`` / ``--key=value`` / bare ``--flag`` tokens into (key, raw value) pairs."""
    tokens = list(argv)
    pairs: list[tuple[str, str]] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("--") or token == "--":
            raise UserError(f"unexpected argument '{token}': overrides are written --key value")
        key = token[2:]
        if "=" in key:
            key, value = key.split("=", 1)
            i += 1
        elif i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
            value = tokens[i + 1]
            i += 2
        else:
            value = "true"
            i += 1
        pairs.append((key, value))
    return pairs


def resolve_key(key: str, fields: Mapping[str, Any]) -> tuple[str | None, str]:
    """Map an override key to (section, key); section None means a top-level scalar."""
    normalized = key.replace("-", "_")
    if "." in normalized:
        section, sub = normalized.split(".", 1)
        if section in SECTION_SCHEMAS and sub in SECTION_SCHEMAS[section]:
            return section, sub
        if section == "grpo" and sub in fields:
            return "grpo", sub
        if section in ("rewards", "reward_args"):
            return section, sub
        raise unknown_key(key, fields)
    if normalized in TOP_LEVEL_SCALARS:
        return None, normalized
    if normalized in fields:
        return "grpo", normalized
    owners = [s for s, schema in SECTION_SCHEMAS.items() if normalized in schema]
    if len(owners) == 1:
        return owners[0], normalized
    if len(owners) > 1:
        choices = " or ".join(f"--{s}.{normalized}" for s in owners)
        raise UserError(f"recipe key '{key}' is ambiguous: write {choices}")
    raise unknown_key(key, fields)


def _parse_value(raw: str) -> Any:
    try:
        return yaml_load(raw)
    except yaml.YAMLError:
        return raw


def apply_overrides(data: dict[str, Any], overrides: Iterable[tuple[str, str]], fields: Mapping[str, Any]) -> None:
    for key, raw in overrides:
        section, sub = resolve_key(key, fields)
        value = _parse_value(raw)
        if section is None:
            data[sub] = value
        else:
            target = data.setdefault(section, {})
            if target is None:
                target = data[section] = {}
            target[sub] = value
