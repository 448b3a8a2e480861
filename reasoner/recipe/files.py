"""Recipe files: where a recipe named on the command line lives, and reading it as YAML 1.2.

A recipe is a packaged name (``reasoner/recipes/NAME.yaml``) or a path. A file that is missing, binary or not
valid YAML is refused with one line naming the file and the fix, before anything else runs.
"""

from __future__ import annotations

import difflib
import re
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from reasoner.errors import UserError


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


def recipe_text(path: Path) -> str:
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
    text = recipe_text(path)
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
