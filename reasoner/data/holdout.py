"""Held-out rows for a data set without a test split: evaluation never scores a training row without saying so.

A local file is its own only split, so evaluating "its test split" would ask the training questions again. With
``eval.holdout`` (a fraction such as 0.1) such a source gives a seeded slice of its rows to evaluation and the
rest to training; both sides pick the same rows from the same seed and the source's id, so they never overlap.
"""

from __future__ import annotations

import random
import zlib
from pathlib import Path

from reasoner.data.files import LOCAL_SUFFIXES, is_local_source
from reasoner.data.sources import GENERATED
from reasoner.errors import UserError

__all__ = ["check_holdout", "held_out_rows", "lacks_split"]


def lacks_split(source_id: str, split: str) -> bool:
    """Whether a data set has no ``split`` of its own: a local file (the file is every split), or a folder without
    ``<split>.jsonl``/``.json``/``.parquet``. Generated data (a split-seeded draw) and hub data sets have splits."""
    if source_id == GENERATED or not is_local_source(source_id):
        return False
    path = Path(source_id).expanduser()
    if path.is_dir():
        return not any((path / f"{split}{suffix}").is_file() for suffix in LOCAL_SUFFIXES)
    return True


def check_holdout(fraction: object) -> float | None:
    """``eval.holdout``: None, or a fraction of rows strictly between 0 and 1."""
    if fraction is None:
        return None
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise UserError(f"eval.holdout must be a fraction between 0 and 1 (e.g. 0.1 keeps a tenth of the rows for "
                        f"evaluation), got {fraction!r}")
    return float(fraction)


def held_out_rows(count: int, fraction: float, seed: int, source_id: str) -> set[int]:
    """The row indexes held out of ``count`` rows: at least one, the same for the same seed and source."""
    wanted = min(count - 1, max(1, round(fraction * count))) if count > 1 else 0
    rng = random.Random(seed + zlib.crc32(Path(source_id).name.encode("utf-8")))
    return set(rng.sample(range(count), wanted))
