"""The recipe format: which sections and keys a recipe may hold, of which types, and how a value is checked.

Nothing here lists a key: the keys, their types, defaults and allowed values are the fields of the section
dataclasses (reasoner.recipe.sections), read through ``section_keys``. The ``grpo`` section is not described
there either: TRL's own ``GRPOConfig`` fields are its schema, read from the installed TRL.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import types
import typing
from typing import Any, Mapping, TypeVar

from reasoner.errors import UserError
from reasoner.recipe.sections import Recipe

NUM = (int, float)
T = TypeVar("T")

@dataclasses.dataclass(frozen=True)
class KeySpec:
    """One recipe key as its section's dataclass field states it."""

    name: str
    types: tuple[type, ...]  # the python types a value may have (``NoneType``: it may be null)
    default: Any
    doc: str
    choices: tuple[str, ...] | None = None

    def describe(self) -> str:
        """``type; default ...; one of ...``, as ``reasoner train --help`` shows it."""
        allowed = f"; one of {', '.join(self.choices)}" if self.choices else ""
        return f"{type_name(self.types)}; default {self.default!r}{allowed}"


def runtime_types(hint: Any) -> tuple[type, ...]:
    """The python types a value of an annotation may have: ``float | None`` -> (float, int, NoneType)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return tuple(kind for arg in typing.get_args(hint) for kind in runtime_types(arg))
    if origin is not None:
        return (origin,)  # list[...] -> list, dict[...] -> dict
    if hint is None or hint is type(None):
        return (type(None),)
    return (float, int) if hint is float else (hint,)


def _default(field: dataclasses.Field) -> Any:
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


@functools.cache
def section_keys(section_type: type) -> dict[str, KeySpec]:
    """The keys a section's dataclass declares, in order, with their types, defaults, docs and allowed values."""
    hints = typing.get_type_hints(section_type)
    return {f.name: KeySpec(f.name, runtime_types(hints[f.name]), _default(f), f.metadata["doc"], f.metadata.get("choices"))
            for f in dataclasses.fields(section_type) if "doc" in f.metadata}


@functools.cache
def _recipe_fields() -> tuple[dict[str, type], dict[str, KeySpec], tuple[str, ...]]:
    hints = typing.get_type_hints(Recipe)
    typed = {f.name: hints[f.name] for f in dataclasses.fields(Recipe) if dataclasses.is_dataclass(hints[f.name])}
    opened = tuple(f.name for f in dataclasses.fields(Recipe) if "open" in f.metadata)
    return typed, section_keys(Recipe), opened


def section_types() -> dict[str, type]:
    """Section name -> the dataclass that defines its keys, in the order a recipe lists them."""
    return _recipe_fields()[0]


def top_level_keys() -> dict[str, KeySpec]:
    """The recipe's top-level scalar keys (``name``, ``accelerate_config``)."""
    return _recipe_fields()[1]


def sections() -> tuple[str, ...]:
    """Every section a recipe may hold: the typed ones, then those defined by TRL, PEFT and the rewards."""
    return (*section_types(), *_recipe_fields()[2])


# GRPOConfig keys the recipe derives from its own sections; setting them directly would contradict those.
DERIVED_GRPO_KEYS = {
    "use_vllm": "generation.backend",
    "vllm_mode": "generation.placement",
    "push_to_hub": "hub.push",
    "hub_model_id": "hub.repo_id",
    "reward_weights": "rewards",
    "hub_token": "the HF_TOKEN environment variable",
}


def grpo_fields() -> dict[str, dataclasses.Field]:
    """GRPOConfig's fields, the authority on what the ``grpo`` section may hold."""
    from trl import GRPOConfig

    return {f.name: f for f in dataclasses.fields(GRPOConfig) if f.init}


def known_keys(fields: Mapping[str, Any]) -> list[str]:
    keys = list(top_level_keys()) + list(fields)
    for section, section_type in section_types().items():
        keys += [f"{section}.{k}" for k in section_keys(section_type)]
    return keys


# keys people reach for that TRL does not have, and what to do instead (no did-you-mean: the near key is another thing)
NOT_IN_TRL = {
    "vllm_data_parallel_size": "TRL has no vLLM data parallelism for dense models; for more generation throughput "
                               "let reasoner plan choose (colocated vLLM generates on every GPU) or raise "
                               "generation.tensor_parallel_size",
}


def unknown_key(key: str, fields: Mapping[str, Any], where: str = "") -> UserError:
    name = key.replace("-", "_").rsplit(".", 1)[-1]
    name = name if name in NOT_IN_TRL else f"vllm_{name}"
    if name in NOT_IN_TRL:
        return UserError(f"{key}: {NOT_IN_TRL[name]}")
    close = difflib.get_close_matches(key.replace("-", "_"), known_keys(fields), n=1, cutoff=0.7)
    hint = f"did you mean '{close[0]}'?" if close else "see the packaged recipes for the valid keys"
    return UserError(
        f"unknown recipe key '{key}'{where}: it is neither a recipe key nor a TRL GRPOConfig field; {hint}"
    )


def unknown_top_level_key(key: str, fields: Mapping[str, Any], where: str = "") -> UserError:
    """A top-level key of a recipe file that is no section or scalar: the nearest section name (``modle`` ->
    ``model``) first, since that is what a top-level typo almost always is, else any known key."""
    owners = [section for section, section_type in section_types().items() if key in section_keys(section_type)]
    owners += ["grpo"] if key in fields else []
    if owners:
        return UserError(f"recipe key '{key}'{where} is at the top level, but it belongs in a section: move it under "
                         f"{' or '.join(f'{owner}:' for owner in owners)}")
    top_level = [*sections(), *top_level_keys(), "base"]
    close = difflib.get_close_matches(str(key), top_level, n=1, cutoff=0.75)
    if not close:
        return unknown_key(str(key), fields, where)
    return UserError(f"unknown recipe key '{key}'{where}: did you mean '{close[0]}'? "
                     f"(the top level holds: {', '.join(top_level)})")


def coerce(value: Any, types: tuple[type, ...]) -> Any:
    """Accept what YAML makes of command-line text when it is unambiguous (``5e-6`` is a str to YAML)."""
    if isinstance(value, bool) and bool not in types:
        return value  # never let True pass as 1
    if isinstance(value, types):
        return value
    if isinstance(value, str):
        for kind in (int, float):
            if kind in types:
                try:
                    return kind(value)
                except ValueError:
                    pass
    if isinstance(value, int) and float in types:
        return float(value)
    return value


def type_name(types: tuple[type, ...]) -> str:
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string", list: "a list",
             dict: "a mapping", type(None): "null"}
    shown = [t for t in types if not (t is int and float in types)]
    return " or ".join(names.get(t, t.__name__) for t in shown)


def field_types(field: dataclasses.Field) -> tuple[type, ...] | None:
    """The plain python types a GRPOConfig field accepts, or None when it is too rich to check here."""
    annotation = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
    text = str(annotation).replace("typing.", "").replace("Optional[", "").replace("]", "")
    parts = {p.strip() for p in text.replace("Union[", "").replace(",", "|").split("|")}
    mapping = {"bool": bool, "int": int, "float": float, "str": str, "None": type(None), "NoneType": type(None),
               "list": list, "dict": dict}
    types: list[type] = []
    for part in parts:
        base = part.split("[")[0]
        if base not in mapping:
            return None  # enums, literals, nested types: GRPOConfig checks those itself
        types.append(mapping[base])
    if float in types and int not in types:
        types.append(int)
    return tuple(types)


def split_list(value: Any, types: tuple[type, ...]) -> Any:
    """A comma list (``wandb,tensorboard``, as the command line writes it) as a list, for a key that holds a list;
    a key that also takes one string keeps a string without a comma (``report_to: none``)."""
    if list in types and isinstance(value, str) and ("," in value or str not in types):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def check_value(dotted: str, value: Any, spec: KeySpec) -> Any:
    """One key's value, coerced from command-line text where unambiguous, or a one-line UserError."""
    value = coerce(value, spec.types)
    if not isinstance(value, spec.types) or (isinstance(value, bool) and bool not in spec.types):
        raise UserError(f"recipe key '{dotted}' must be {type_name(spec.types)}, got {value!r}; fix it in the recipe or "
                        f"with --{dotted}")
    if spec.choices and value not in spec.choices:
        raise UserError(f"recipe key '{dotted}' is {value!r}; use one of: {', '.join(spec.choices)}")
    return value


def check_section(section: str, values: Any, section_type: type[T]) -> T:
    """A section's mapping from the recipe as its dataclass: unknown keys and wrong types refused in one line,
    every key left out at its declared default."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise UserError(f"recipe section '{section}' must be a mapping of keys, not {type(values).__name__}")
    schema = section_keys(section_type)
    checked: dict[str, Any] = {}
    for key, value in values.items():
        if key not in schema and f"vllm_{key}" in NOT_IN_TRL:
            raise UserError(f"{section}.{key}: {NOT_IN_TRL['vllm_' + key]}")
        if key not in schema:
            close = difflib.get_close_matches(key, list(schema), n=1)
            hint = f"did you mean '{section}.{close[0]}'?" if close else f"valid keys: {', '.join(schema)}"
            raise UserError(f"unknown recipe key '{section}.{key}': {hint}")
        checked[key] = check_value(f"{section}.{key}", value, schema[key])
    return section_type(**checked)


def check_grpo(values: Any, fields: Mapping[str, dataclasses.Field]) -> dict[str, Any]:
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise UserError("recipe section 'grpo' must be a mapping of TRL GRPOConfig keys")
    checked: dict[str, Any] = {}
    for key, value in values.items():
        if key in DERIVED_GRPO_KEYS:
            raise UserError(f"recipe key 'grpo.{key}' is set from {DERIVED_GRPO_KEYS[key]}: set that instead")
        if key not in fields:
            raise unknown_key(f"grpo.{key}", fields, " (not a field of TRL's GRPOConfig)")
        types = field_types(fields[key])
        if types is not None:
            value = coerce(split_list(value, types), types)
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                raise UserError(
                    f"recipe key '{key}' must be {type_name(types)}, got {value!r}; fix it in the recipe or with --{key}"
                )
        checked[key] = value
    return checked
