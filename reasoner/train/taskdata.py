"""The task's training data as a run reads it: where each data set is, pinned and fetched, then prepared.

Shared by training (``reasoner.train.run``, where the work is split across ranks and nodes) and by
``reasoner train --dry-run`` (``reasoner.train.dryrun``, one process on a login node), so that a dry run reads
the data exactly the way the job will: the same classification of ``dataset.id``, the same pinned commit of a
hub data set (through ``HF_ENDPOINT``), the same preparation and counts.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from reasoner.errors import UserError

log = logging.getLogger("reasoner.train")
T = TypeVar("T")

__all__ = ["fetch_datasets", "load_training_data", "materialize_source", "pin_source", "refuse_missing_paths"]


def refuse_missing_paths(*sources: tuple[Any, str]) -> None:
    """A local path that does not exist would reach the hub as a malformed repo id; name the path instead."""
    for source, key in sources:
        text = source.id
        if source.kind == "hub" and (text.startswith(("/", "./", "../", "~")) or text.count("/") > 1
                                     or text.endswith((".json", ".jsonl", ".csv", ".parquet", ".txt"))):
            raise UserError(f"{key} '{text}' is not an existing file or folder (nor a hub repo id ORG/NAME): "
                            f"fix the path or create it")


def _reads_as_a_path(text: str) -> bool:
    """Whether an id the hub did not resolve was more likely meant as a local path: it has no organization
    (hub ids are ORG/NAME), or its first part is a folder here (``data/gsm8k`` beside a ``data/`` folder)."""
    first = text.split("/", 1)[0]
    return "/" not in text or Path(first).expanduser().is_dir()


def _no_such_path(text: str, hub_error: UserError) -> UserError:
    path = Path(text).expanduser()
    parent = next((p for p in path.parents if p.is_dir()), Path("."))
    held = ", ".join(sorted(p.name for p in parent.iterdir())[:12]) or "nothing"
    where = "the current folder" if str(parent) == "." else f"folder {parent}"
    return UserError(f"dataset.id '{text}': no such file or folder ({Path.cwd()}; {where} holds: {held}), nor a data "
                     f"set on the hub ({hub_error}): fix the path, or name a hub data set as ORG/NAME")


def _as_path_error(source: Any, kind: str, work: Callable[[], T]) -> T:
    """``work`` on one source; a data set id the hub does not resolve (or the offline cache does not hold) and
    that reads like a local path is reported as the missing file or folder it most likely is, not as a hub problem."""
    try:
        return work()
    except UserError as error:
        if kind == "dataset" and source.kind == "hub" and _reads_as_a_path(source.id):
            raise _no_such_path(source.id, error) from None
        raise


def pin_source(source: Any, kind: str) -> str | None:
    """Pin one source to a commit (see ``_as_path_error`` for a data set id that is a missing path)."""
    from reasoner.hubclient import calls as hub

    return _as_path_error(source, kind, lambda: hub.pin(source, kind).commit)


def materialize_source(source: Any, kind: str, *, download: bool) -> Any:
    """Give one source its local path (see ``_as_path_error`` for a data set id that is a missing path)."""
    from reasoner.hubclient import calls as hub

    return _as_path_error(source, kind, lambda: hub.materialize(source, kind, download=download))


def fetch_datasets(recipe: Any) -> list[Any]:
    """The task's data sets, each pinned and in the local cache, in one process (what training does across
    ranks in ``resolve_sources``, for the data sets only): no request at all when every data set is local."""
    from reasoner.hubclient import calls as hub

    _, datasets = hub.classify_recipe(recipe)
    refuse_missing_paths(*[(dataset, "dataset.id") for dataset in datasets])
    if any(source.kind == "hub" for source in datasets):
        if not hub.is_offline():
            hub.check_token()
        for source in datasets:
            source.commit = pin_source(source, "dataset")
            materialize_source(source, "dataset", download=True)
    return datasets


def load_training_data(recipe: Any, dataset_sources: Sequence[Any], tokenizer: Any):
    """The task's training rows (every data set read from its pinned local copy) and the counts of what was kept.

    Without a tokenizer (a dry run) prompts are not measured, so none is dropped as too long."""
    from reasoner import data

    ds = recipe.dataset
    locations = [str(source.path) if source.path else source.id for source in dataset_sources]
    prepared, stats, per_source = data.prepare_task(
        recipe.task_sources, locations, system=recipe.prompt.system, few_shot=recipe.prompt.few_shot, tokenizer=tokenizer,
        max_prompt_tokens=ds.max_prompt_tokens, num_generated=ds.num_generated,
        seed=recipe.seed, limit=ds.limit, holdout=recipe.eval.holdout, eval_split=recipe.eval.split)
    if len(per_source) > 1:
        for source, part in zip(dataset_sources, per_source):
            log.info("data set %s: %s", source.describe(), part.summary())
    log.info("training data: %s", stats.mixture_summary())
    return prepared, stats
