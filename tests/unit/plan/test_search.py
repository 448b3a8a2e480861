"""The smallest layout that fits each Qwen2.5 size: it fits, one GPU fewer does not, and it grows with the model."""

from __future__ import annotations

import pytest

from reasoner.plan import estimate, formulas, search
from reasoner.errors import UserError
from qwen_recipes import qwen_recipe

SIZES = ["0.5b", "1.5b", "3b", "7b", "14b", "32b"]


@pytest.mark.parametrize("size", SIZES)
def test_every_qwen_size_has_a_smallest_layout_that_fits(size):
    recipe = qwen_recipe(size)
    nodes, gpus, stage, tp = search.smallest_layout(recipe, 80)
    found = search.smallest_plan(recipe, 80)
    assert (found.nodes, found.gpus_per_node, found.zero_stage, found.tensor_parallel_size) == (nodes, gpus, stage, tp)
    plan = estimate.estimate(recipe, nodes=nodes, gpus_per_node=gpus, zero_stage=stage, tensor_parallel_size=tp,
                           placement=found.placement)
    assert plan.fits
    if nodes * gpus > 1:  # one GPU fewer (same node size) does not fit, whatever the ZeRO stage
        fewer = (nodes - 1, gpus) if nodes > 1 else (1, gpus // 2)
        for zero in formulas.ZERO_STAGES:
            for where in ("auto", recipe.generation.placement):
                try:
                    smaller = estimate.estimate(recipe, nodes=fewer[0], gpus_per_node=fewer[1], zero_stage=zero,
                                              placement=where)
                except UserError:
                    continue
                assert not smaller.fits


def test_smallest_layouts_grow_with_the_model():
    totals = []
    for size in SIZES:
        nodes, gpus, _stage, _tp = search.smallest_layout(qwen_recipe(size), 80)
        totals.append(nodes * gpus)
    assert totals == sorted(totals)
    assert totals[0] == 1 and totals[-1] > 8  # 0.5B on one GPU; 32B needs more than one node of 8
