"""Columns of one type each, as Arrow needs them: a column that mixes types holds text.

JSON data often mixes ``"42"`` and ``42`` (or a number and a list) in one column; Arrow refuses such a column.
Here it becomes text (JSON for lists and objects), and whether a value is a usable answer stays the answer
format's call, which drops and counts the rows it cannot read.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

__all__ = ["uniform_columns", "uniform_rows"]


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    return "number" if isinstance(value, (int, float)) else type(value).__name__


def _text(value: object) -> object:
    return value if value is None or isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _mixed(values: Iterable[object]) -> bool:
    return len({_kind(value) for value in values if value is not None}) > 1


def uniform_columns(columns: Mapping[str, list]) -> dict[str, list]:
    """Column name -> values, with every column that mixes types turned into text."""
    return {name: [_text(v) for v in values] if _mixed(values) else list(values) for name, values in columns.items()}


def uniform_rows(rows: list[dict]) -> list[dict]:
    """Row objects, with every column that mixes types across the rows turned into text."""
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    mixed = {name for name in names if _mixed(row.get(name) for row in rows)}
    if not mixed:
        return rows
    return [{key: _text(value) if key in mixed else value for key, value in row.items()} for row in rows]
