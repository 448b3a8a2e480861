"""Evaluation at the end of training (``eval.after_training``): the trained model beside its base model.

Both models are scored with the recipe's own prompt, data sets and answer format on the held-out split, so the
numbers in the model card measure what training changed and nothing else.
"""

from __future__ import annotations

import logging
from pathlib import Path

from reasoner.eval import evaluate, model_card_section
from reasoner.eval.cli import recipe_settings
from reasoner.hubclient.calls import Source
from reasoner.recipe.load import Recipe

log = logging.getLogger("reasoner.train")


def evaluate_after_training(recipe: Recipe, output_dir: Path, *, base_model: Source) -> str:
    """Evaluate the base and the trained model; return the markdown section for the model card.

    ``recipe`` names the commits the run pinned (reasoner.train.pinned), and the base model is read from its
    pinned snapshot, so a push to ``main`` during training changes neither the questions nor the baseline.
    """
    common = recipe_settings(recipe)
    base_path = str(base_model.path) if base_model.path else base_model.id
    base_revision = None if base_model.path else base_model.commit
    log.info("evaluating the base model and the trained model on %s[%s] (limit %s)", common["data_source"],
             common["split"], common["limit"])
    baseline = evaluate(base_path, revision=base_revision, output_dir=output_dir / "eval" / "base", **common)
    trained = evaluate(str(output_dir), output_dir=output_dir / "eval" / "trained", **common)
    return model_card_section(trained, baseline=baseline)
