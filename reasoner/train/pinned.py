"""The recipe as the run really ran it: every hub revision replaced by the commit the run pinned.

A recipe names ``model.revision: main``; the run pins that to one commit before training and trains on it
alone. Everything the run does afterwards with the recipe (evaluating the base model's data set after
training, the ``recipe.yaml`` it writes, the recipe in the pushed model card) must use the same commits, or
a push to ``main`` while the run trains would give the evaluation other questions than the training's data
set at its commit, and a rerun of the written recipe other weights than the card names.

A run stopped and resumed is still one run: each checkpoint records the pinned commits (``pins.json``), and a
resume keeps them rather than pinning ``main`` again.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any, Sequence

from transformers import TrainerCallback

from reasoner.hubclient.calls import Source, is_commit, pinned_mix
from reasoner.recipe.load import Recipe

log = logging.getLogger("reasoner.train")


def pinned_recipe(recipe: Recipe, model: Source, datasets: Sequence[Source]) -> Recipe:
    """A copy of ``recipe`` whose model and data set revisions are the pinned commits (``datasets`` in recipe
    order: the one data set, or each ``dataset.mix`` entry). Sources not from the hub keep their revision."""
    model_section = dataclasses.replace(recipe.model, revision=model.pinned) if model.pinned else recipe.model
    dataset_section = recipe.dataset
    if dataset_section.mix:
        dataset_section = dataclasses.replace(dataset_section, mix=pinned_mix(dataset_section.mix, list(datasets)))
    elif datasets and datasets[0].pinned:
        dataset_section = dataclasses.replace(dataset_section, revision=datasets[0].pinned)
    return dataclasses.replace(recipe, model=model_section, dataset=dataset_section)


# -- a resumed run keeps the commits its checkpoint was trained on -----------------------------------------
PINS_FILE = "pins.json"


def write_pins(folder: Path, sources: Sequence[Source]) -> None:
    """Record in a checkpoint which commits its weights were trained from (hub sources only; the model first)."""
    kinds = ["model", *["dataset"] * (len(sources) - 1)]
    pins = [{"kind": kind, "id": source.id, "revision": source.revision, "commit": source.commit}
            for kind, source in zip(kinds, sources) if source.pinned]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PINS_FILE).write_text(json.dumps({"pins": pins}, indent=1) + "\n")


def read_pins(checkpoint: Path | None) -> list[dict[str, Any]]:
    """The pins a checkpoint recorded; none for a checkpoint written before they were recorded."""
    try:
        data = json.loads((checkpoint / PINS_FILE).read_text()) if checkpoint else {}
    except (OSError, ValueError):
        return []
    pins = data.get("pins") if isinstance(data, dict) else None
    return [entry for entry in pins if isinstance(entry, dict)] if isinstance(pins, list) else []


def recorded_commit(source: Source, kind: str, pins: Sequence[dict[str, Any]]) -> str | None:
    """The commit the resumed checkpoint was trained on for this source, if the recipe still asks for the same
    revision (``main``, a tag, or that commit): resuming continues those weights and that data, wherever
    ``main`` has moved since. A revision the recipe changed on purpose is followed, with a warning."""
    if source.kind != "hub":
        return None
    for entry in pins:
        if entry.get("kind") != kind or entry.get("id") != source.id or not is_commit(entry.get("commit")):
            continue
        if source.revision in (entry.get("revision"), entry["commit"]):
            log.info("resuming on %s %s@%s, the commit the checkpoint was trained on (recipe revision %s)", kind,
                     source.id, entry["commit"], source.revision or "main")
            return entry["commit"]
        log.warning("the checkpoint was trained on %s %s@%s (revision %s), the recipe now asks for revision %s: "
                    "following the recipe", kind, source.id, entry["commit"], entry.get("revision"), source.revision)
    return None


class PinsCallback(TrainerCallback):
    """Write ``pins.json`` into every checkpoint (global rank zero, before the checkpoint is recorded complete
    and pushed), so that a resume, here or on another machine from the hub, finds the commits to keep."""

    def __init__(self, sources: Sequence[Source]) -> None:
        self.sources = list(sources)

    def on_save(self, args, state, control, **kwargs):  # noqa: D102 - TrainerCallback API
        if state.is_world_process_zero:
            write_pins(Path(args.output_dir) / f"checkpoint-{state.global_step}", self.sources)
