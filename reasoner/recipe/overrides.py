"""Command-line overrides of a recipe: ``--key value`` pairs, each mapped to the one recipe key it names.

A bare GRPOConfig key (``--max_steps 3``) goes to ``grpo``; a dotted key (``--model.id ORG/NAME``) to its section;
a key that two sections share must be written dotted. Values are read as YAML, as in the recipe file. A key that
holds a list takes several values (``--report_to wandb tensorboard``) or, for a GRPOConfig list, a comma list
(``--report_to wandb,tensorboard``; see ``reasoner.recipe.schema.check_grpo``).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Union

import yaml

from reasoner.errors import UserError
from reasoner.recipe.files import yaml_load
from reasoner.recipe.schema import field_types, section_keys, section_types, top_level_keys, unknown_key


Raw = Union[str, list[str]]


def parse_overrides(argv: Iterable[str]) -> list[tuple[str, Raw]]:
    """Turn ``--key value`` / ``--key=value`` / bare ``--flag`` tokens into (key, raw value) pairs.

    Several values after one key (``--report_to wandb tensorboard``) stay a list of raw values; only a key that
    holds a list takes them (``apply_overrides``)."""
    tokens = list(argv)
    pairs: list[tuple[str, Raw]] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("--") or token == "--":
            raise UserError(f"unexpected argument '{token}': overrides are written --key value")
        key = token[2:]
        i += 1
        if "=" in key:
            key, value = key.split("=", 1)
            pairs.append((key, value))
            continue
        values = []
        while i < len(tokens) and not tokens[i].startswith("--"):
            values.append(tokens[i])
            i += 1
        pairs.append((key, values[0] if len(values) == 1 else values or "true"))
    return pairs


def resolve_key(key: str, fields: Mapping[str, Any]) -> tuple[str | None, str]:
    """Map an override key to (section, key); section None means a top-level scalar."""
    normalized = key.replace("-", "_")
    typed = {section: section_keys(section_type) for section, section_type in section_types().items()}
    if "." in normalized:
        section, sub = normalized.split(".", 1)
        if section in typed and sub in typed[section]:
            return section, sub
        if section == "grpo" and sub in fields:
            return "grpo", sub
        if section in ("rewards", "reward_args", "peft"):  # checked by their own sections' rules
            return section, sub
        raise unknown_key(key, fields)
    if normalized in top_level_keys():
        return None, normalized
    if normalized in fields:
        return "grpo", normalized
    owners = [s for s, keys in typed.items() if normalized in keys]
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


def _holds_a_list(section: str | None, sub: str, fields: Mapping[str, Any]) -> bool:
    if section == "grpo":
        return list in (field_types(fields[sub]) or ())
    if section in section_types():
        return list in section_keys(section_types()[section])[sub].types
    return False


def apply_overrides(data: dict[str, Any], overrides: Iterable[tuple[str, Raw]], fields: Mapping[str, Any]) -> None:
    for key, raw in overrides:
        section, sub = resolve_key(key, fields)
        if isinstance(raw, list):
            if not _holds_a_list(section, sub, fields):
                raise UserError(f"--{key} takes one value, got {len(raw)}: {' '.join(raw)}; quote a value with spaces, "
                                "and write every other setting as --key value")
            value: Any = [_parse_value(item) for item in raw]
        else:
            value = _parse_value(raw)
        if section is None:
            data[sub] = value
        else:
            target = data.setdefault(section, {})
            if target is None:
                target = data[section] = {}
            target[sub] = value
