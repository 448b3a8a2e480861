"""The recipe as the run really ran it: every hub revision replaced by the commit the run pinned.

A recipe names ``model.revision: main``; the run pins that to one commit before training and trains on it
alone. Everything the run does afterwards with the recipe (evaluating the base model's data set after
training, the ``recipe.yaml`` it writes, the recipe in the pushed model card) must use the same commits, or
a push to ``main`` while the run trains would give the evaluation other questions than the training's data
set at its commit, and a rerun of the written recipe other weights than the card names.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Sequence

from reasoner.hubclient.calls import Source
from reasoner.recipe.load import Recipe


def _commit(source: Source) -> str | None:
    return source.commit if source.kind == "hub" else None


def pinned_recipe(recipe: Recipe, model: Source, datasets: Sequence[Source]) -> Recipe:
    """A copy of ``recipe`` whose model and data set revisions are the pinned commits (``datasets`` in recipe
    order: the one data set, or each ``dataset.mix`` entry). Sources not from the hub keep their revision."""
    model_section = dict(recipe.model)
    if _commit(model):
        model_section["revision"] = _commit(model)
    dataset_section = copy.deepcopy(recipe.dataset)
    mix = dataset_section.get("mix") or []
    if mix:
        dataset_section["mix"] = [dict(entry, revision=_commit(source)) if _commit(source) else entry
                                  for entry, source in zip(mix, datasets)]
    elif datasets and _commit(datasets[0]):
        dataset_section["revision"] = _commit(datasets[0])
    return dataclasses.replace(recipe, model=model_section, dataset=dataset_section)
