"""Evaluation at the end of training (``eval.after_training``): the trained model beside its base model.

Both models are scored with the recipe's own prompt on the held-out split, so the numbers in the model card
measure what training changed and nothing else.
"""

from __future__ import annotations

import logging
from pathlib import Path

from reasoner.hub import Source
from reasoner.recipe import Recipe

log = logging.getLogger("reasoner.train")


def evaluate_after_training(recipe: Recipe, output_dir: Path, *, base_model: Source) -> str:
    """Evaluate the base and the trained model; return the markdown section for the model card."""
    from reasoner import evaluate
    from reasoner.data import resolve_system_prompt

    ds = recipe.dataset
    data_source = ds["id"]
    common = dict(split=recipe.eval["split"], limit=recipe.eval["limit"], data_source=data_source,
                  data_config=ds["config"], data_revision=ds["revision"], question_column=ds["question_column"],
                  answer_column=ds["answer_column"], num_generated=ds["num_generated"],
                  data_seed=int(recipe.grpo.get("seed", 42)), system=resolve_system_prompt(recipe.prompt["system"]),
                  few_shot=recipe.prompt["few_shot"], max_new_tokens=int(recipe.grpo.get("max_completion_length", 256)))
    base_path = str(base_model.path) if base_model.path else base_model.id
    log.info("evaluating the base model and the trained model on %s[%s] (limit %s)", data_source, common["split"], common["limit"])
    baseline = evaluate.evaluate(base_path, output_dir=output_dir / "eval" / "base", **common)
    trained = evaluate.evaluate(str(output_dir), output_dir=output_dir / "eval" / "trained", **common)
    return evaluate.model_card_section(trained, baseline=baseline)
