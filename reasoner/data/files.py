"""Local data files: JSON lines, JSON, Parquet, or a folder holding ``<split>.jsonl`` or a hub-style layout.

Every problem with a file (not found, not JSON, a row that is not an object, no rows for the split) is one
``UserError`` naming the file, the line where there is one, and the fix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from reasoner.data.columns import uniform_rows
from reasoner.errors import UserError

if TYPE_CHECKING:  # datasets is slow to import; the CLI imports this package for every command.
    from datasets import Dataset

__all__ = ["LOCAL_SUFFIXES", "is_local_source", "load_local"]

LOCAL_SUFFIXES = (".jsonl", ".json", ".parquet")


def is_local_source(source: str) -> bool:
    """Whether a data set id names a local file or folder (existing, or written like a path)."""
    if Path(source).expanduser().exists():
        return True
    return source.startswith(("/", "./", "../", "~", ".\\")) or source.endswith(LOCAL_SUFFIXES)


def _read_json_rows(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None  # maybe JSON lines under a .json name, as the hub often has
        if isinstance(data, list):
            return _only_objects(data, path)
        if isinstance(data, dict):
            lists = [value for value in data.values() if isinstance(value, list)]
            if len(lists) == 1:  # {"data": [...]}
                return _only_objects(lists[0], path)
            raise UserError(f"{path}: a .json data file must hold a list of row objects (or JSON lines)")
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise UserError(f"{path}:{number}: not valid JSON ({error.msg}): fix or remove that line") from None
    return _only_objects(rows, path)


def _only_objects(rows: list, path: Path) -> list[dict]:
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise UserError(f"{path}: row {index + 1} is a {type(row).__name__}, not an object with named columns")
    return rows


def _read_file(path: Path) -> "Dataset":
    from datasets import Dataset

    if path.suffix == ".parquet":
        import pyarrow.parquet as pq
        from datasets.table import InMemoryTable

        return Dataset(InMemoryTable(pq.read_table(path)))
    if path.suffix in (".jsonl", ".json"):
        return Dataset.from_list(uniform_rows(_read_json_rows(path)))
    raise UserError(f"cannot read {path}: use a .jsonl, .json or .parquet file, or a folder with <split>.jsonl")


def load_local(source: str, config: str | None, split: str) -> "Dataset":
    """The rows of a local file (the file is the split) or of a folder's ``split``."""
    path = Path(source).expanduser()
    if path.is_file():
        return _read_file(path)
    if path.is_dir():
        for suffix in LOCAL_SUFFIXES:
            candidate = path / f"{split}{suffix}"
            if candidate.is_file():
                return _read_file(candidate)
        # A folder laid out like a hub data set repository (e.g. a downloaded snapshot).
        import datasets

        try:
            return datasets.load_dataset(str(path), config, split=split)
        except (ValueError, FileNotFoundError, datasets.exceptions.DatasetsError) as error:
            present = ", ".join(sorted(p.name for p in path.iterdir())[:20]) or "nothing"
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise UserError(
                f"no '{split}' data in folder {path} (it holds: {present}; {reason}): "
                f"add {split}.jsonl there or point dataset.id at a file"
            ) from None
    raise UserError(f"dataset file not found: {path}: check dataset.id (a path, a hub id, or 'generated')")

