"""``reasoner prefetch``: preflight, pin and download a recipe's model and data set, once per node.

Run it once per node before training (``slurm/grpo.sbatch`` and ``launch/grpo_local.sh`` do). Afterwards the
training ranks and the vLLM server run with ``HF_HUB_OFFLINE=1``: they read the node-local ``HF_HUB_CACHE``
and send no request to the hub. ``--pin-only`` resolves the commits without downloading, so a job can pin
once and hand every node the same ``--model.revision``/``--dataset.revision`` overrides.
"""

from __future__ import annotations

import argparse
import logging
import shlex
from pathlib import Path
from typing import Sequence

from reasoner import hub
from reasoner.recipe import load_recipe

log = logging.getLogger("reasoner.prefetch")


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="reasoner prefetch", description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--pins-out", type=Path, help="write the pinning overrides (--model.revision SHA ...) here")
    parser.add_argument("--pins", type=Path, help="read pinning overrides written by --pins-out (the job's commits)")
    parser.add_argument("--pin-only", action="store_true", help="resolve commits, download nothing")
    ns, overrides = parser.parse_known_args(list(argv))
    pinned = shlex.split(ns.pins.read_text()) if ns.pins else []
    recipe = load_recipe(ns.recipe, [*overrides, *pinned])
    model = hub.classify_model(recipe.model["id"], recipe.model["revision"])
    dataset = hub.classify_dataset(recipe.dataset["id"], recipe.dataset["revision"])
    if hub.is_offline():
        print("HF_HUB_OFFLINE is set: nothing to fetch; checking the local cache only")
    elif model.kind == "hub" or dataset.kind == "hub":
        user = hub.check_token()
        print(f"hub {hub.endpoint()} answers" + (f" (token of '{user}')" if user else " (no token)"))
    hub.pin(model, "model")
    hub.pin(dataset, "dataset")
    if not ns.pin_only:
        hub.materialize(model, "model", download=True)
        hub.materialize(dataset, "dataset", download=True)
    for label, source in (("model", model), ("dataset", dataset)):
        where = f" -> {source.path}" if source.path else ""
        print(f"{label}: {source.describe()}{where}")
    overrides_line = " ".join(hub.pins_as_overrides(model, dataset))
    if ns.pins_out:
        ns.pins_out.parent.mkdir(parents=True, exist_ok=True)
        ns.pins_out.write_text(overrides_line + "\n")
    print(f"pins: {overrides_line or '(nothing from the hub)'}")
    return 0
