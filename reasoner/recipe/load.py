"""Recipes: the YAML data that describes one training run, its command-line overrides, and validation.

A recipe is data, not code. It is loaded from a packaged name (``reasoner/recipes/NAME.yaml``) or a path,
overridden by ``--key value`` pairs, and validated *before* any model, data set or process starts, so
that every mistake costs seconds and reads as one line naming the key and the fix.

The ``grpo`` section holds TRL ``GRPOConfig`` keys unchanged; they are checked against ``GRPOConfig``'s
own fields so the recipe format follows TRL instead of shadowing it.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from reasoner.recipe.batch import BatchShape, check_generation_batch
from reasoner.errors import UserError
from reasoner.recipe.values import check_eval_sampling, check_grpo_values, check_push_repo_id
from reasoner.recipe.base import resolve_base
from reasoner.recipe.chattemplate import read_chat_template
from reasoner.lora.config import check_peft
from reasoner.lora.layout import check_lora_layout
from reasoner.rewards import REWARDS
from reasoner.rewards.loading import check_reward_section
from reasoner.recipe.files import recipe_path
from reasoner.recipe.overrides import apply_overrides, parse_overrides
from reasoner.recipe.schema import (NUM, check_grpo, check_section, check_value, coerce, grpo_fields, section_types,
                                    sections, top_level_keys, unknown_top_level_key)
from reasoner.recipe.sections import Recipe
from reasoner.tasks.spec import check_task
from reasoner.data.holdout import check_holdout


def without_removed(values: Any, reward_args: Any) -> tuple[Any, Any]:
    """The rewards and reward_args left once every reward whose weight is ``null`` is removed.

    ``name: null`` in a recipe with a ``base`` drops the base's reward (weight 0 would still call it every step and
    log it); its ``reward_args`` go with it."""
    if not isinstance(values, dict):
        return values, reward_args
    removed = {name for name, weight in values.items() if weight is None}
    kept = {name: weight for name, weight in values.items() if name not in removed}
    if removed and not kept:
        raise UserError(f"recipe section 'rewards' removes every reward ({', '.join(map(str, removed))} set to null): "
                        "keep at least one, e.g. correctness: 1.0")
    if isinstance(reward_args, dict):
        reward_args = {name: args for name, args in reward_args.items() if name not in removed and args is not None}
    return kept, reward_args


def _check_rewards(values: Any, reward_args: Any, base_dir: Path) -> tuple[dict[str, float], dict[str, dict]]:
    """Weights must be numbers (``null`` removes the reward); every reward must resolve (built-in, import path,
    file, or TRL) and pass its signature check, so a broken user reward fails here rather than at the first step."""
    values, reward_args = without_removed(values, reward_args)
    if not isinstance(values, dict) or not values:
        raise UserError(f"recipe section 'rewards' must map reward names to weights, e.g. correctness: 1.0; known: {', '.join(REWARDS)}")
    checked: dict[str, float] = {}
    for name, weight in values.items():
        weight = coerce(weight, NUM)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight != weight:
            raise UserError(f"reward weight 'rewards.{name}' must be a number (or null to remove it), got {weight!r}")
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
    """Refuse a generation batch that does not hold whole groups of ``num_generations`` (rule: reasoner.recipe.batch)."""
    check_generation_batch(BatchShape.from_grpo(grpo), world_size)


def _check_combinations(recipe: Recipe, planned: bool) -> None:
    if recipe.hub.push and not recipe.hub.repo_id:
        raise UserError("hub.push is true but hub.repo_id is empty: set --hub.repo_id ORG/NAME or --hub.push false")
    if recipe.model.id in (None, ""):
        raise UserError("model.id is missing: set it in the recipe or with --model.id ORG/NAME")
    if "output_dir" not in recipe.grpo:
        raise UserError("grpo.output_dir is missing: set it in the recipe or with --output_dir DIR")
    for i, shot in enumerate(recipe.prompt.few_shot):
        if not isinstance(shot, dict) or not {"question", "answer"} <= set(shot):
            raise UserError(f"prompt.few_shot[{i}] must be a mapping with 'question' and 'answer' (the answer in the exact format)")
    if planned:  # the layout checks the batch with the processes it plans (reasoner.topology)
        BatchShape.from_grpo(recipe.grpo)
    else:
        check_batch_layout(recipe.grpo, world_size_from_env())
    check_grpo_values(recipe.grpo)
    check_push_repo_id(recipe.hub.push_repo)
    check_task(recipe.dataset, recipe.answer)
    check_holdout(recipe.eval.holdout)
    check_eval_sampling(recipe.eval)
    check_lora_layout(recipe)


def load_recipe(name_or_path: str, overrides: Iterable[str] | Iterable[tuple[str, str]] = (), *,
                planned: bool = False) -> Recipe:
    """Load, override and validate a recipe into a typed ``Recipe``; raise UserError with the fix on any problem.

    The batch rule is checked for the processes the launcher started (``WORLD_SIZE``, 1 without a launcher),
    unless ``planned``: the planner and the launchers check it for the processes of the layout they plan.
    """
    path = recipe_path(name_or_path)
    data = resolve_base(path)
    fields = grpo_fields()
    override_list = list(overrides)
    pairs = override_list if override_list and isinstance(override_list[0], tuple) else parse_overrides(override_list)  # type: ignore[arg-type]
    apply_overrides(data, pairs, fields)

    for key in data:
        if key not in sections() and key not in top_level_keys():
            raise unknown_top_level_key(key, fields, f" in {path.name}")
    typed = {s: check_section(s, data.get(s), section_type) for s, section_type in section_types().items()}
    prompt = typed["prompt"]
    typed["prompt"] = dataclasses.replace(prompt, chat_template=read_chat_template(prompt.chat_template, path.parent))
    scalars = {key: check_value(key, data[key], spec) for key, spec in top_level_keys().items() if key in data}
    rewards, reward_args = _check_rewards(data.get("rewards"), data.get("reward_args"), path.parent)
    recipe = Recipe(
        rewards=rewards,
        reward_args=reward_args,
        grpo=check_grpo(data.get("grpo"), fields),
        peft=check_peft(data.get("peft")),
        source=str(path),
        **typed,
        **scalars,
    )
    _check_combinations(recipe, planned)
    return recipe
