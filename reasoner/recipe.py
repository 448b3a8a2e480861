"""Recipes: the YAML data that describes one training run, its command-line overrides, and validation.

A recipe is data, not code. It is loaded from a packaged name (``reasoner/recipes/NAME.yaml``) or a path,
overridden by ``--key value`` pairs, and validated *before* any model, data set or process starts, so
that every mistake costs seconds and reads as one line naming the key and the fix.

The ``grpo`` section holds TRL ``GRPOConfig`` keys unchanged; they are checked against ``GRPOConfig``'s
own fields so the recipe format follows TRL instead of shadowing it.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from reasoner.batch import BatchShape, check_generation_batch
from reasoner.errors import UserError
from reasoner.inputs import check_grpo_values, check_push_repo_id
from reasoner.recipe_base import resolve_base
from reasoner.tasks.formats import FORMATS
from reasoner.tasks.spec import ANSWER_SCHEMA, check_task

# Section schemas: key -> (accepted python types, default). ``None`` in the types means "may be null".
_STR = (str,)
_OPT_STR = (str, type(None))
_BOOL = (bool,)
_INT = (int,)
_NUM = (int, float)
_LIST = (list,)

SECTION_SCHEMAS: dict[str, dict[str, tuple[tuple[type, ...], Any]]] = {
    "model": {
        "id": (_STR, None),
        "revision": (_OPT_STR, "main"),
        "dtype": (_STR, "auto"),
        # float32 weights for the optimizer unless false (see reasoner.precision)
        "fp32_master_weights": (_BOOL, True),
        "attn_implementation": (_OPT_STR, None),
    },
    "dataset": {
        "id": (_STR, "generated"),
        "config": (_OPT_STR, None),
        "split": (_STR, "train"),
        "revision": (_OPT_STR, "main"),
        "question_column": (_STR, "question"),
        "answer_column": (_STR, "answer"),
        "system_column": (_OPT_STR, None),  # a column with each row's own system prompt
        "mix": (_LIST, []),  # several data sets mixed by weight (reasoner.tasks.spec)
        "max_prompt_tokens": ((int, type(None)), None),
        "num_generated": (_INT, 256),
        "limit": ((int, type(None)), None),
    },
    "answer": ANSWER_SCHEMA,  # how gold answers are read and compared (reasoner.tasks.formats)
    "prompt": {
        "system": (_STR, "default"),
        "few_shot": (_LIST, []),
    },
    "generation": {
        "backend": (_STR, "transformers"),
        "placement": (_STR, "auto"),
        "tensor_parallel_size": (_INT, 1),
        "gpu_memory_utilization": (_NUM, 0.3),
    },
    "hub": {
        "repo_id": (_OPT_STR, None),
        "push": (_BOOL, False),
        "private": (_BOOL, False),
        "push_checkpoints": (_BOOL, True),
    },
    "resources": {  # the layout a recipe is sized for, and what reasoner plan assumes about it
        "nodes": (_INT, 1),
        "gpus_per_node": (_INT, 1),
        "gpu_memory_gb": (_NUM, 80),
        "signal_lead_s": (_NUM, 120),  # seconds SLURM's warning comes before the kill (sbatch --signal=B:USR1@N)
        "checkpoint_write_gbps": (_NUM, 1.0),  # GB/s one node writes to the output folder
        "gpu_tflops": (_NUM, 100),  # effective training TFLOP/s per GPU, for the step time
    },
    "tracking": {
        "samples_every": (_INT, 10),
        "samples": (_INT, 4),
    },
    "eval": {
        "after_training": (_BOOL, False),
        "split": (_STR, "test"),
        "limit": ((int, type(None)), 200),
    },
}
TOP_LEVEL_SCALARS: dict[str, tuple[tuple[type, ...], Any]] = {
    "name": (_STR, "recipe"),
    "accelerate_config": (_OPT_STR, None),
}
SECTIONS = (*SECTION_SCHEMAS, "rewards", "reward_args", "grpo")
ENUMS: dict[tuple[str, str], tuple[str, ...]] = {
    ("generation", "backend"): ("transformers", "vllm"),
    ("generation", "placement"): ("auto", "colocate", "dedicated-gpu", "dedicated-node"),
    ("model", "dtype"): ("auto", "float32", "bfloat16", "float16"),
    ("answer", "format"): FORMATS,
}
# GRPOConfig keys the recipe derives from its own sections; setting them directly would contradict those.
DERIVED_GRPO_KEYS = {
    "use_vllm": "generation.backend",
    "vllm_mode": "generation.placement",
    "push_to_hub": "hub.push",
    "hub_model_id": "hub.repo_id",
    "reward_weights": "rewards",
    "hub_token": "the HF_TOKEN environment variable",
}


class RecipeLoader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. YAML 1.1 also reads yes/no/on/off as booleans, which would turn
    ``save_strategy: no`` (a TRL value) into False."""


RecipeLoader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
RecipeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=RecipeLoader)  # noqa: S506 - a SafeLoader subclass


@dataclasses.dataclass
class Recipe:
    """A validated recipe: plain dicts per section, so every consumer reads data, not objects."""

    name: str
    model: dict[str, Any]
    dataset: dict[str, Any]
    prompt: dict[str, Any]
    rewards: dict[str, float]
    generation: dict[str, Any]
    hub: dict[str, Any]
    eval: dict[str, Any]
    grpo: dict[str, Any]
    resources: dict[str, Any] = dataclasses.field(default_factory=dict)
    tracking: dict[str, Any] = dataclasses.field(default_factory=dict)
    answer: dict[str, Any] = dataclasses.field(default_factory=dict)
    reward_args: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    accelerate_config: str | None = None
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("source")
        return data

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @property
    def output_dir(self) -> Path:
        return Path(self.grpo["output_dir"])


def packaged_recipes() -> list[str]:
    """Names of the recipes that ship with the package."""
    folder = resources.files("reasoner") / "recipes"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def recipe_path(name_or_path: str) -> Path:
    """Find a recipe by packaged name or file path."""
    candidate = Path(name_or_path).expanduser()
    if candidate.is_file():
        return candidate
    packaged = resources.files("reasoner") / "recipes" / f"{name_or_path}.yaml"
    if packaged.is_file():
        return Path(str(packaged))
    names = packaged_recipes()
    close = difflib.get_close_matches(name_or_path, names, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise UserError(
        f"recipe '{name_or_path}' not found: {hint}pass a YAML file path or one of: {', '.join(names)}"
    )


def _recipe_text(path: Path) -> str:
    """The text of a recipe file; a binary file (not UTF-8, or holding NUL bytes) is one line, not a traceback."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"recipe {path} is not a text file (byte {exc.object[exc.start]:#04x} at offset {exc.start} is "
                        "not UTF-8): pass a YAML recipe") from None
    except OSError as exc:
        raise UserError(f"cannot read recipe {path}: {exc.strerror}") from None
    if "\x00" in text:
        raise UserError(f"recipe {path} is a binary file (it holds NUL bytes at offset {text.index(chr(0))}): "
                        "pass a YAML recipe")
    return text


def read_yaml(path: Path) -> dict[str, Any]:
    text = _recipe_text(path)
    try:
        data = yaml_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or "invalid YAML"
        raise UserError(f"recipe {path} is not valid YAML{where}: {problem}; fix the syntax there") from None
    if not isinstance(data, dict):
        raise UserError(f"recipe {path} must be a YAML mapping of sections (model, dataset, grpo, ...)")
    return data


def grpo_fields() -> dict[str, dataclasses.Field]:
    """GRPOConfig's fields, the authority on what the ``grpo`` section may hold."""
    from trl import GRPOConfig

    return {f.name: f for f in dataclasses.fields(GRPOConfig) if f.init}


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


def _known_keys(fields: Mapping[str, Any]) -> list[str]:
    keys = list(TOP_LEVEL_SCALARS) + list(fields)
    for section, schema in SECTION_SCHEMAS.items():
        keys += [f"{section}.{k}" for k in schema]
    return keys


def _unknown_key(key: str, fields: Mapping[str, Any], where: str = "") -> UserError:
    close = difflib.get_close_matches(key.replace("-", "_"), _known_keys(fields), n=1, cutoff=0.7)
    hint = f"did you mean '{close[0]}'?" if close else "see the packaged recipes for the valid keys"
    return UserError(
        f"unknown recipe key '{key}'{where}: it is neither a recipe key nor a TRL GRPOConfig field; {hint}"
    )


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
        raise _unknown_key(key, fields)
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
    raise _unknown_key(key, fields)


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


def _coerce(value: Any, types: tuple[type, ...]) -> Any:
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


def _type_name(types: tuple[type, ...]) -> str:
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string", list: "a list",
             dict: "a mapping", type(None): "null"}
    shown = [t for t in types if not (t is int and float in types)]
    return " or ".join(names.get(t, t.__name__) for t in shown)


def _field_types(field: dataclasses.Field) -> tuple[type, ...] | None:
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


def _check_section(section: str, values: Any, schema: Mapping[str, tuple[tuple[type, ...], Any]]) -> dict:
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise UserError(f"recipe section '{section}' must be a mapping of keys, not {type(values).__name__}")
    checked: dict[str, Any] = {}
    for key, value in values.items():
        if key not in schema:
            close = difflib.get_close_matches(key, list(schema), n=1)
            hint = f"did you mean '{section}.{close[0]}'?" if close else f"valid keys: {', '.join(schema)}"
            raise UserError(f"unknown recipe key '{section}.{key}': {hint}")
        types, _default = schema[key]
        value = _coerce(value, types)
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise UserError(
                f"recipe key '{section}.{key}' must be {_type_name(types)}, got {value!r}; fix it in the recipe or with --{section}.{key}"
            )
        allowed = ENUMS.get((section, key))
        if allowed and value not in allowed:
            raise UserError(f"recipe key '{section}.{key}' is {value!r}; use one of: {', '.join(allowed)}")
        checked[key] = value
    for key, (_types, default) in schema.items():
        checked.setdefault(key, copy.deepcopy(default))
    return checked


def _check_grpo(values: Any, fields: Mapping[str, dataclasses.Field]) -> dict[str, Any]:
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise UserError("recipe section 'grpo' must be a mapping of TRL GRPOConfig keys")
    checked: dict[str, Any] = {}
    for key, value in values.items():
        if key in DERIVED_GRPO_KEYS:
            raise UserError(f"recipe key 'grpo.{key}' is set from {DERIVED_GRPO_KEYS[key]}: set that instead")
        if key not in fields:
            raise _unknown_key(f"grpo.{key}", fields, " (not a field of TRL's GRPOConfig)")
        types = _field_types(fields[key])
        if types is not None:
            value = _coerce(value, types)
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                raise UserError(
                    f"recipe key '{key}' must be {_type_name(types)}, got {value!r}; fix it in the recipe or with --{key}"
                )
        checked[key] = value
    return checked


def _check_rewards(values: Any, reward_args: Any, base_dir: Path) -> tuple[dict[str, float], dict[str, dict]]:
    """Weights must be numbers; every reward must resolve (built-in, import path, file, or TRL) and pass its
    signature check, so a broken user reward fails here rather than at the first training step."""
    from reasoner.rewards import REWARDS
    from reasoner.rewards.loading import check_reward_section

    if not isinstance(values, dict) or not values:
        raise UserError(f"recipe section 'rewards' must map reward names to weights, e.g. correctness: 1.0; known: {', '.join(REWARDS)}")
    checked: dict[str, float] = {}
    for name, weight in values.items():
        weight = _coerce(weight, _NUM)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight != weight:
            raise UserError(f"reward weight 'rewards.{name}' must be a number, got {weight!r}")
        checked[str(name)] = float(weight)
    return check_reward_section(checked, reward_args, base_dir)


def world_size_from_env(env: Mapping[str, str] | None = None) -> int:
    """Training processes as the launcher will start them (accelerate/torchrun set WORLD_SIZE)."""
    env = os.environ if env is None else env
    try:
        return max(1, int(env.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def check_batch_layout(grpo: Mapping[str, Any], world_size: int) -> None:
    """Refuse a generation batch that does not hold whole groups of ``num_generations`` (rule: reasoner.batch)."""
    check_generation_batch(BatchShape.from_grpo(grpo), world_size)


def _check_combinations(recipe: Recipe) -> None:
    if recipe.hub["push"] and not recipe.hub["repo_id"]:
        raise UserError("hub.push is true but hub.repo_id is empty: set --hub.repo_id ORG/NAME or --hub.push false")
    if recipe.model["id"] in (None, ""):
        raise UserError("model.id is missing: set it in the recipe or with --model.id ORG/NAME")
    if "output_dir" not in recipe.grpo:
        raise UserError("grpo.output_dir is missing: set it in the recipe or with --output_dir DIR")
    for i, shot in enumerate(recipe.prompt["few_shot"]):
        if not isinstance(shot, dict) or not {"question", "answer"} <= set(shot):
            raise UserError(f"prompt.few_shot[{i}] must be a mapping with 'question' and 'answer' (the answer in the exact format)")
    check_batch_layout(recipe.grpo, world_size_from_env())
    check_grpo_values(recipe.grpo)
    check_push_repo_id(recipe.hub)
    check_task(recipe.dataset, recipe.answer)


def load_recipe(name_or_path: str, overrides: Iterable[str] | Iterable[tuple[str, str]] = ()) -> Recipe:
    """Load, override and validate a recipe; raise UserError with the fix on any problem."""
    path = recipe_path(name_or_path)
    data = resolve_base(path, read_yaml(path), read=read_yaml, find=recipe_path)
    fields = grpo_fields()
    override_list = list(overrides)
    pairs = override_list if override_list and isinstance(override_list[0], tuple) else parse_overrides(override_list)  # type: ignore[arg-type]
    apply_overrides(data, pairs, fields)

    for key in data:
        if key not in SECTIONS and key not in TOP_LEVEL_SCALARS:
            raise _unknown_key(key, fields, f" in {path.name}")
    sections = {s: _check_section(s, data.get(s), schema) for s, schema in SECTION_SCHEMAS.items()}
    scalars = {}
    for key, (types, default) in TOP_LEVEL_SCALARS.items():
        value = data.get(key, default)
        if not isinstance(value, types):
            raise UserError(f"recipe key '{key}' must be {_type_name(types)}, got {value!r}")
        scalars[key] = value
    rewards, reward_args = _check_rewards(data.get("rewards"), data.get("reward_args"), path.parent)
    recipe = Recipe(
        rewards=rewards,
        reward_args=reward_args,
        grpo=_check_grpo(data.get("grpo"), fields),
        source=str(path),
        **sections,
        **scalars,
    )
    _check_combinations(recipe)
    return recipe
