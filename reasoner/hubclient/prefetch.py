"""``reasoner prefetch``: preflight, pin and download a recipe's model and data sets, once per node.

Run it once per node before training (``slurm/grpo.sbatch`` and ``launch/grpo_local.sh`` do). Afterwards the
training ranks and the vLLM server run with ``HF_HUB_OFFLINE=1``: they read the node-local ``HF_HUB_CACHE``
and send no request to the hub. ``--pin-only`` resolves the commits without downloading, so a job can pin
once and hand every node the same ``--model.revision``/``--dataset.revision`` overrides.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
from pathlib import Path
from typing import Sequence

from reasoner.hubclient import calls as hub
from reasoner.recipe.load import load_recipe

log = logging.getLogger("reasoner.hubclient.prefetch")


def mixture_pins(mix: list[dict], sources: list[hub.Source]) -> list[str]:
    """``--dataset.mix JSON`` with each hub data set's revision replaced by its pinned commit.

    The JSON has no spaces, so launchers that read the pins into a shell array (``read -ra``) keep it one word;
    a mixture with a space in an id or column is pinned by each process itself (returns nothing).
    """
    entries = hub.pinned_mix(mix, sources)
    text = json.dumps(entries, separators=(",", ":"), ensure_ascii=False)
    return [] if any(char.isspace() for char in text) else ["--dataset.mix", text]


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="reasoner prefetch", description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--pins-out", type=Path, help="write the pinning overrides (--model.revision SHA ...) here")
    parser.add_argument("--pins", type=Path, help="read pinning overrides written by --pins-out (the job's commits)")
    parser.add_argument("--pin-only", action="store_true", help="resolve commits, download nothing")
    ns, overrides = parser.parse_known_args(list(argv))
    pinned = shlex.split(ns.pins.read_text()) if ns.pins else []
    recipe = load_recipe(ns.recipe, [*overrides, *pinned], planned=True)
    model, datasets = hub.classify_recipe(recipe)
    asks_hub = not hub.is_offline() and any(source.kind == "hub" for source in (model, *datasets))
    if hub.is_offline():
        print("HF_HUB_OFFLINE is set: nothing to fetch; checking the local cache only")
    user = hub.check_token() if asks_hub else None  # without a token this sends nothing: pinning is the first request
    hub.pin(model, "model")
    for dataset in datasets:
        hub.pin(dataset, "dataset")
    if asks_hub:  # said only once the hub has answered (an unreachable one ends in pin's one line, exit 2)
        print(f"hub {hub.endpoint()} answers" + (f" (token of '{user}')" if user else " (no token)"))
    if not ns.pin_only:
        hub.materialize(model, "model", download=True)
        for dataset in datasets:
            hub.materialize(dataset, "dataset", download=True)
    for label, source in (("model", model), *[("dataset", dataset) for dataset in datasets]):
        where = f" -> {source.path}" if source.path else ""
        print(f"{label}: {source.describe()}{where}")
    if recipe.dataset.mix:
        pins = hub.pins_as_overrides(model, None) + mixture_pins(recipe.dataset.mix, datasets)
    else:
        pins = hub.pins_as_overrides(model, datasets[0])
    overrides_line = " ".join(pins)
    if ns.pins_out:
        ns.pins_out.parent.mkdir(parents=True, exist_ok=True)
        ns.pins_out.write_text(overrides_line + "\n")
    print(f"pins: {overrides_line or '(nothing from the hub)'}")
    return 0
