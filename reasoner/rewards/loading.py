"""Rewards by name, by import path, or from TRL, each checked and guarded so a broken one is one clear line.

A recipe's ``rewards`` section maps reward specs to weights. A spec is

- a built-in name (``correctness``, ``strict_format``, ... see ``reasoner.rewards.builtin``);
- ``package.module:function``, imported like any Python code (the package must be importable);
- ``path/to/file.py:function``, a file loaded by path (relative to the recipe's folder, else the current one);
- the name of one of TRL's reward functions (``think_format_reward``, ``accuracy_reward``, ...). TRL's factories
  (``get_soft_overlong_punishment``, ...) take their arguments from the recipe's ``reward_args`` section, as does
  any factory of your own.

User and TRL rewards follow TRL's signature ``fn(completions, **kwargs) -> list[float | None]`` (TRL passes
``prompts``, ``completions``, ``completion_ids`` and every data set column as keywords). They are wrapped so
that, during training too, a wrong return value or an exception names the reward and the fix in one line.
TRL rewards that read the gold answer as ``solution`` get the data set's ``answer`` column under that name.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from reasoner.errors import UserError
from reasoner.rewards.builtin import REWARDS, RewardFunc

__all__ = ["absolute_spec", "check_returned", "check_reward_args", "check_reward_section", "get_reward_funcs", "resolve_reward", "trl_reward_names"]

_FORMS = "a built-in name, package.module:function, path/to/file.py:function, or a TRL reward name"


def trl_reward_names() -> list[str]:
    """The reward functions and factories ``trl.rewards`` exports."""
    import trl.rewards

    modules = getattr(trl.rewards, "_modules", set())
    return sorted(name for name in getattr(trl.rewards, "__all__", []) if name not in modules)


def _known() -> str:
    return f"built-in: {', '.join(REWARDS)}; TRL: {', '.join(trl_reward_names())}; or {_FORMS}"


def _file_candidates(path_text: str, base_dir: Path | None) -> list[Path]:
    path = Path(path_text).expanduser()
    if path.is_absolute():
        return [path]
    return [folder / path for folder in ([base_dir] if base_dir else []) + [Path.cwd()]]


def _is_file_form(where: str) -> bool:
    return where.endswith(".py") or "/" in where or "\\" in where


def _find_file(spec: str, path_text: str, base_dir: Path | None) -> Path:
    candidates = _file_candidates(path_text, base_dir)
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        looked = " or ".join(str(p) for p in candidates)
        raise UserError(f"reward '{spec}': file {path_text} not found (looked at {looked}): fix the path")
    return found.resolve()


def absolute_spec(spec: str, base_dir: Path | None) -> str:
    """A file spec with its file's absolute path (so a saved copy of the recipe finds it from anywhere)."""
    where, colon, attribute = spec.rpartition(":")
    if not colon or not where or not _is_file_form(where):
        return spec
    return f"{_find_file(spec, where, base_dir)}:{attribute}"


def _load_file(spec: str, path_text: str, base_dir: Path | None) -> Any:
    found = _find_file(spec, path_text, base_dir)
    # A stable module name per file, registered in sys.modules so the functions pickle like any others.
    name = f"reasoner_user_rewards.{found.stem}_{hashlib.sha256(str(found).encode()).hexdigest()[:10]}"
    if name in sys.modules:
        return sys.modules[name]
    module_spec = importlib.util.spec_from_file_location(name, found)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as error:  # noqa: BLE001 - any failure of user code becomes one line naming it
        del sys.modules[name]
        raise UserError(f"reward '{spec}': {found} does not import ({_one_line(error)}): fix that file") from None
    return module


def _load_module(spec: str, module_name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except Exception as error:  # noqa: BLE001 - any failure of user code becomes one line naming it
        raise UserError(f"reward '{spec}': cannot import {module_name} ({_one_line(error)}): install it, put it on "
                        "PYTHONPATH, or name a file as path/to/file.py:function") from None


def _attribute(spec: str, module: Any, attribute: str, where: str) -> Any:
    target = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            defined = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
            raise UserError(f"reward '{spec}': {where} has no '{attribute}' (it defines: {', '.join(defined) or 'nothing'}): "
                            "fix the name after the colon")
        target = getattr(target, part)
    return target


def _one_line(error: BaseException) -> str:
    text = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _import_target(spec: str, base_dir: Path | None) -> tuple[Any, bool]:
    """The object a non-built-in spec names, and whether it comes from TRL."""
    if ":" in spec:
        where, _, attribute = spec.rpartition(":")
        if not where or not attribute:
            raise UserError(f"reward '{spec}' is not a valid reward: write {_FORMS}")
        if _is_file_form(where):
            return _attribute(spec, _load_file(spec, where, base_dir), attribute, where), False
        return _attribute(spec, _load_module(spec, where), attribute, where), where.split(".")[0] == "trl"
    if spec in trl_reward_names():
        import trl.rewards

        return getattr(trl.rewards, spec), True
    close = difflib.get_close_matches(spec, list(REWARDS) + trl_reward_names(), n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise UserError(f"unknown reward '{spec}': {hint}use one of {_known()}")


def _check_signature(spec: str, fn: Callable) -> None:
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return  # a callable without a readable signature: the trial batch checks it
    name = getattr(fn, "__name__", "reward")
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        raise UserError(f"reward '{spec}' must accept **kwargs: TRL passes prompts, completions, completion_ids and "
                        f"every data set column as keywords; write def {name}(completions, **kwargs)")
    positional = [p.name for p in parameters if p.kind is inspect.Parameter.POSITIONAL_ONLY and p.default is p.empty]
    if positional:
        raise UserError(f"reward '{spec}' takes {', '.join(positional)} positionally only, but TRL passes everything by "
                        f"keyword; write def {name}(completions, **kwargs)")


def check_returned(spec: str, values: Any, count: int) -> list[Any]:
    """A reward's return value, refused in one line unless it is one number (or None) per completion."""
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
        raise UserError(f"reward '{spec}' returned {type(values).__name__}, not a list: return one float per completion")
    values = list(values)
    if len(values) != count:
        raise UserError(f"reward '{spec}' returned {len(values)} values for {count} completions: "
                        "return exactly one float per completion, in order")
    for value in values:
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            if not (hasattr(value, "item") and isinstance(value.item(), (int, float))):
                raise UserError(f"reward '{spec}' returned a {type(value).__name__} ({value!r}) among its values: "
                                "return floats (or None to skip a completion)")
    return values


def _guard(spec: str, fn: Callable, *, solution_from_answer: bool) -> RewardFunc:
    """The reward, raising a one-line UserError that names it on a bad return value or an exception."""

    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> list[Any]:
        if solution_from_answer and "solution" not in kwargs and "answer" in kwargs:
            kwargs["solution"] = kwargs["answer"]
        completions = kwargs.get("completions", args[0] if args else [])
        try:
            values = fn(*args, **kwargs)
        except UserError:
            raise
        except Exception as error:  # noqa: BLE001 - the user's code: name it and stop in one line
            raise UserError(f"reward '{spec}' raised {_one_line(error)} on a batch of {len(completions)} completions: "
                            "fix the function") from None
        return check_returned(spec, values, len(completions))

    guarded.__name__ = getattr(fn, "__name__", None) or spec.rpartition(":")[2]
    guarded.reward_spec = spec  # type: ignore[attr-defined]
    return guarded


def resolve_reward(spec: str, *, args: Mapping[str, Any] | None = None, base_dir: Path | None = None) -> RewardFunc:
    """The reward function a spec names: built-ins as they are, everything else imported, checked and guarded."""
    if not isinstance(spec, str) or not spec.strip():
        raise UserError(f"a reward name must be a non-empty string, got {spec!r}: use {_FORMS}")
    if spec in REWARDS:
        if args:
            raise UserError(f"reward '{spec}' is built in and takes no reward_args: remove reward_args.{spec}")
        return REWARDS[spec]
    target, from_trl = _import_target(spec, base_dir)
    name = spec.rpartition(":")[2]
    if args is not None:
        if not callable(target):
            raise UserError(f"reward '{spec}' is not callable, so reward_args cannot build it: name a function")
        try:
            target = target(**dict(args))
        except Exception as error:  # noqa: BLE001 - the factory's own complaint, in one line
            raise UserError(f"reward '{spec}' could not be built from reward_args ({_one_line(error)}): fix "
                            f"reward_args.{spec}") from None
    elif from_trl and name.startswith("get_"):
        raise UserError(f"reward '{spec}' is a TRL factory: give its arguments under reward_args.{spec} "
                        f"(see help(trl.rewards.{name}))")
    if not callable(target):
        raise UserError(f"reward '{spec}' is a {type(target).__name__}, not a function: name a function with TRL's "
                        "signature fn(completions, **kwargs)")
    _check_signature(spec, target)
    wants_solution = "solution" in _parameter_names(target)
    return _guard(spec, target, solution_from_answer=wants_solution)


def _parameter_names(fn: Callable) -> set[str]:
    try:
        return set(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return set()


def get_reward_funcs(names: Iterable[str], *, args: Mapping[str, Mapping[str, Any]] | None = None,
                     base_dir: Path | None = None) -> list[RewardFunc]:
    """The reward functions for the given specs, in order (a recipe's ``rewards`` mapping works).

    An unknown name is a recipe mistake: the error lists the known names. Two rewards that would log under the
    same name (``rewards/<name>/mean``) are refused.
    """
    names = list(names)
    if not names:
        raise UserError(f"no rewards named: list at least one under 'rewards' (known: {', '.join(sorted(REWARDS))})")
    args = dict(args or {})
    unused = set(args) - set(names)
    if unused:
        raise UserError(f"reward_args.{sorted(unused)[0]} names no reward of the recipe: add it under rewards or remove it")
    funcs = [resolve_reward(name, args=args.get(name), base_dir=base_dir) for name in names]
    seen: dict[str, str] = {}
    for name, fn in zip(names, funcs):
        logged = fn.__name__
        if logged in seen:
            raise UserError(f"rewards '{seen[logged]}' and '{name}' would both log as rewards/{logged}: rename one function")
        seen[logged] = name
    return funcs


def check_reward_section(weights: Mapping[str, float], reward_args: Any,
                         base_dir: Path | None) -> tuple[dict[str, float], dict[str, dict[str, Any]]]:
    """A recipe's rewards and reward_args with file paths made absolute, every reward resolved and checked."""
    args = check_reward_args(reward_args)
    names = {spec: absolute_spec(spec, base_dir) for spec in list(weights) + list(args)}
    checked_weights = {names[spec]: weight for spec, weight in weights.items()}
    checked_args = {names[spec]: value for spec, value in args.items()}
    get_reward_funcs(checked_weights, args=checked_args, base_dir=base_dir)
    return checked_weights, checked_args


def check_reward_args(values: Any) -> dict[str, dict[str, Any]]:
    """A recipe's ``reward_args`` section: reward spec -> keyword arguments of that reward's factory."""
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise UserError("recipe section 'reward_args' must map reward names to mappings of arguments, e.g. "
                        "get_soft_overlong_punishment: {max_completion_len: 96, soft_punish_cache: 16}")
    checked: dict[str, dict[str, Any]] = {}
    for name, arguments in values.items():
        if not isinstance(arguments, Mapping):
            raise UserError(f"reward_args.{name} must be a mapping of keyword arguments, got {arguments!r}")
        checked[str(name)] = dict(arguments)
    return checked
