"""Loading a data set's rows: generated problems, a local file or folder, or a hub data set.

``load_rows`` is the one entry point; it checks that the rows exist and have the columns the recipe names, so
a wrong column or split is one line naming what the data set does have. Hub data sets load through
``datasets.load_dataset``, which follows ``HF_ENDPOINT`` and ``HF_TOKEN``; an unreachable hub is one line too.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from reasoner.data.files import is_local_source, load_local
from reasoner.data.generated import generate_problems
from reasoner.errors import UserError

if TYPE_CHECKING:  # datasets is slow to import; the CLI imports this package for every command.
    from datasets import Dataset

__all__ = ["GENERATED", "check_columns", "load_rows"]

GENERATED = "generated"


def _load_hub(source: str, config: str | None, split: str, revision: str | None) -> "Dataset":
    import datasets
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError

    where = f"'{source}'" + (f" (config {config})" if config else "") + (f" at revision {revision}" if revision else "")
    try:
        return datasets.load_dataset(source, config, split=split, revision=revision)
    except datasets.exceptions.DatasetNotFoundError:
        raise UserError(
            f"dataset {where} not found on {constants.ENDPOINT}: check dataset.id and dataset.revision, "
            "and that HF_TOKEN may read it"
        ) from None
    except ConnectionError as error:  # datasets reports an unreachable hub (or an offline cache miss) this way
        if constants.HF_HUB_OFFLINE:
            raise UserError(
                f"dataset {where} is not in the local cache and HF_HUB_OFFLINE is set: run 'reasoner prefetch', unset "
                "HF_HUB_OFFLINE, or use a local data file (reasoner eval --data PATH, or dataset.id in a recipe)"
            ) from None
        raise UserError(
            f"cannot reach dataset {where} on {constants.ENDPOINT} ({type(error).__name__}): start the hub or fix "
            "HF_ENDPOINT, or use a local data file (reasoner eval --data PATH, or dataset.id in a recipe)"
        ) from None
    except (ValueError, FileNotFoundError, HfHubHTTPError) as error:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise UserError(
            f"cannot load split '{split}' of dataset {where} from {constants.ENDPOINT}: {first_line}; "
            "check dataset.config, dataset.split and dataset.revision"
        ) from None


def check_columns(columns: Iterable[str], needed: Mapping[str, str | None], where: str) -> None:
    """Refuse rows that lack a column the recipe names (``needed``: recipe key -> column; None: not used)."""
    columns = list(columns)
    for key, column in needed.items():
        if column is not None and column not in columns:
            raise UserError(
                f"{where} has no column '{column}' (its columns: {', '.join(columns) or 'none'}): "
                f"set dataset.{key} to one of them"
            )


def load_rows(
    source: str,
    *,
    config: str | None = None,
    split: str = "train",
    revision: str | None = None,
    question_column: str = "question",
    answer_column: str = "answer",
    num_generated: int = 1000,
    seed: int = 0,
    system_column: str | None = None,
    columns: Mapping[str, str | None] | None = None,
) -> "Dataset":
    """The raw rows of a data set, checked to be non-empty and to have the question and answer columns.

    ``source`` is ``generated`` (``num_generated`` problems; the train split uses ``seed`` itself and other
    splits a seed derived from the split name, so a test split never repeats the training problems by
    construction), a local ``.jsonl``/``.json``/``.parquet`` file (the file is the split), a folder with
    ``{split}.jsonl`` (or ``.json``/``.parquet``, or laid out like a hub data set repository), or a hub
    data set id loaded with ``datasets.load_dataset``, which follows ``HF_ENDPOINT``/``HF_TOKEN``.
    """
    if not isinstance(source, str) or not source.strip():
        raise UserError(f"dataset.id must name a data set (a hub id, a path, or '{GENERATED}'), got {source!r}")
    if source == GENERATED:
        if num_generated <= 0:
            raise UserError(f"dataset.num_generated must be a positive number of problems, got {num_generated}")
        from datasets import Dataset

        split_seed = seed if split == "train" else seed + zlib.crc32(split.encode("utf-8"))
        rows = Dataset.from_list(generate_problems(num_generated, split_seed))
        where = "the generated data set"
    elif is_local_source(source):
        rows = load_local(source, config, split)
        where = f"data set {source}"
    else:
        rows = _load_hub(source, config, split, revision)
        where = f"data set '{source}' split '{split}'"
    if len(rows) == 0:
        raise UserError(f"{where} has no rows: point dataset.id/dataset.split at data with rows")
    named = {"question_column": question_column, "answer_column": answer_column, "system_column": system_column}
    check_columns(rows.column_names, {**named, **dict(columns or {})}, where)
    return rows
