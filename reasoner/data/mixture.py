"""Mixing several prepared data sets by weight, as open-r1's dataset mixtures do.

A weight is the share of a data set's rows the mixture takes: 1 takes every row, 0.5 a seeded random half,
2 every row twice, 1.5 every row once and a seeded half again. The mixture is then shuffled with the same
seed, so a run sees its data sets interleaved, and the same seed always gives the same mixture.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

from reasoner.data.columns import uniform_columns

if TYPE_CHECKING:  # datasets is slow to import; the CLI imports this package for every command.
    from datasets import Dataset

__all__ = ["mix_datasets", "mix_indices"]


def mix_indices(sizes: Sequence[int], weights: Sequence[float], seed: int) -> list[tuple[int, int]]:
    """``(part, row)`` pairs of a mixture: ``round(weight * size)`` rows of each part, shuffled together."""
    rng = random.Random(seed)
    chosen: list[tuple[int, int]] = []
    for part, (size, weight) in enumerate(zip(sizes, weights)):
        wanted = round(weight * size)
        whole, rest = divmod(wanted, size) if size else (0, 0)
        chosen += [(part, row) for _ in range(whole) for row in range(size)]
        chosen += [(part, row) for row in sorted(rng.sample(range(size), rest))]
    rng.shuffle(chosen)
    return chosen


def mix_datasets(parts: Sequence["Dataset"], weights: Sequence[float], seed: int) -> "Dataset":
    """One data set of the parts' rows by ``mix_indices``.

    Every row keeps every column of its part (the rewards read them); a column another part lacks is None there,
    and a column whose types differ between parts becomes text, so parts of different shapes still mix.
    """
    from datasets import Dataset

    columns: dict[str, None] = {}
    for part in parts:
        columns.update(dict.fromkeys(part.column_names))
    data = {name: [list(part[name]) if name in part.column_names else [None] * len(part) for part in parts]
            for name in columns}
    order = mix_indices([len(p) for p in parts], weights, seed)
    mixed = {name: [values[part][row] for part, row in order] for name, values in data.items()}
    return Dataset.from_dict(uniform_columns(mixed))

