"""NB201 cell equivalence: dead edges, canonical expressions, degenerate cells, sampling options."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from searchkit.paths import find_data
from searchkit.spaces.nb201 import (
    NUM_ARCHS,
    PARAMETRISED_OPS,
    TABLE_RELATIVE,
    NB201Arch,
    NB201Space,
    canonical,
    cell_expression,
    equivalence_classes,
    is_degenerate,
    live_edges,
    prune,
)
from searchkit.spaces.nb201_network import NB201Cell

SPACE = NB201Space()
IDENTITY = "|none~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|skip_connect~0|none~1|none~2|"  # issue 18's demo pick
ARCH_1 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def arch(text: str) -> NB201Arch:
    return SPACE.decode(text)


def test_the_demo_cell_is_the_identity() -> None:
    a = arch(IDENTITY)
    assert live_edges(a) == (False, False, False, True, False, False)  # node 2 is dead
    assert cell_expression(a) == "x" and is_degenerate(a)
    assert SPACE.encode(prune(a)) == "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
    assert canonical(a) == prune(a) and SPACE.canonical(a) == prune(a) and SPACE.is_degenerate(a)


def test_known_expressions() -> None:
    assert cell_expression(arch(ALL_NONE)) == "0" and is_degenerate(arch(ALL_NONE))
    a = arch(ARCH_1)
    assert all(live_edges(a)) and not is_degenerate(a)
    assert cell_expression(a) == "conv3x3(conv3x3(x))+conv3x3(x)+pool(conv3x3(x))+x"
    # a conv fed only by an unreachable node is dead; so is one into a node that never reaches node 3
    fed_by_zero = arch("|none~0|+|none~0|nor_conv_3x3~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|")
    assert cell_expression(fed_by_zero) == "pool(x)" and is_degenerate(fed_by_zero)
    dead_end = arch("|nor_conv_3x3~0|+|none~0|none~1|+|avg_pool_3x3~0|none~1|none~2|")
    assert live_edges(dead_end) == (False,) * 3 + (True, False, False) and is_degenerate(dead_end)


@pytest.mark.parametrize("a, b", [
    # skip_connect is the identity: conv through node 1 == conv straight from the input
    ("|skip_connect~0|+|none~0|none~1|+|none~0|nor_conv_3x3~1|none~2|",
     "|none~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|"),
    # sums commute
    ("|skip_connect~0|+|none~0|none~1|+|nor_conv_3x3~0|avg_pool_3x3~1|none~2|",
     "|skip_connect~0|+|none~0|none~1|+|avg_pool_3x3~0|nor_conv_3x3~1|none~2|"),
    # average pooling is linear: pool(x + conv(x)) == pool(x) + pool(conv(x))
    ("|nor_conv_1x1~0|+|skip_connect~0|skip_connect~1|+|none~0|none~1|avg_pool_3x3~2|",
     "|nor_conv_1x1~0|+|none~0|none~1|+|avg_pool_3x3~0|avg_pool_3x3~1|none~2|"),
])
def test_equivalent_pairs(a: str, b: str) -> None:
    assert cell_expression(arch(a)) == cell_expression(arch(b))
    assert canonical(arch(a)) == canonical(arch(b))


def test_counts_over_all_cells() -> None:
    classes = equivalence_classes()
    cells = [a for members in classes.values() for a in members]
    assert len(cells) == len(set(cells)) == NUM_ARCHS
    assert len(classes) == 4660  # NATS-Bench's unique-string rule gives 6,466 (see nb201.py)
    assert sum(is_degenerate(a) for a in cells) == 1983
    assert sum(is_degenerate(members[0]) for members in classes.values()) == 48
    assert len(classes["0"]) == 341 and len(classes["x"]) == 400
    assert len({prune(a) for a in cells}) == 9445  # cells without a dead edge


def test_rules_agree_with_each_other() -> None:
    for key, members in equivalence_classes().items():
        rep = members[0]
        assert prune(rep) == rep and canonical(rep) == rep
        assert min(sum(op != "none" for op in a.ops) for a in members) == sum(op != "none" for op in rep.ops)
        degenerate = "conv" not in key
        for a in members:
            assert cell_expression(a) == key and is_degenerate(a) == degenerate
            assert cell_expression(prune(a)) == key
            assert is_degenerate(a) == (not any(op in PARAMETRISED_OPS for op in prune(a).ops))


def test_pruning_keeps_the_cell_function() -> None:
    """The real module: a cell and its pruned copy with the live edges' weights give equal outputs
    (eval mode at initialisation, where BatchNorm maps zeros to zeros)."""
    rng = np.random.default_rng(0)
    x = torch.randn(2, 4, 6, 6)
    for _ in range(40):
        a = SPACE.sample(rng)
        torch.manual_seed(0)
        full, pruned = NB201Cell(a, 4).eval(), NB201Cell(prune(a), 4).eval()
        for k, live in enumerate(live_edges(a)):
            if live:
                pruned.edges[k].load_state_dict(full.edges[k].state_dict())
        with torch.no_grad():
            torch.testing.assert_close(full(x), pruned(x), rtol=0, atol=1e-6)


def test_sampling_options() -> None:
    rng = np.random.default_rng(0)
    nondeg = NB201Space(exclude_degenerate=True)
    draws = [nondeg.sample(rng) for _ in range(600)]
    assert not any(is_degenerate(a) for a in draws) and len(set(draws)) > 550
    parent = arch(IDENTITY)
    children = {nondeg.mutate(parent, rng) for _ in range(300)}
    assert children and not any(is_degenerate(c) for c in children)
    assert all(sum(p != c for p, c in zip(parent.ops, child.ops)) == 1 for child in children)

    distinct = NB201Space(distinct=True)
    draws = [distinct.sample(rng) for _ in range(600)]
    assert all(canonical(a) == a for a in draws)
    assert sum(is_degenerate(a) for a in draws) < 30  # 48 of 4,660 classes (1 %), not 1,983 of 15,625 cells
    both = NB201Space(exclude_degenerate=True, distinct=True)
    parent = arch(ARCH_1)
    for _ in range(100):
        child = both.mutate(parent, rng)
        assert canonical(child) == child and not is_degenerate(child)
        assert cell_expression(child) != cell_expression(parent)
        assert any(cell_expression(n) == cell_expression(child) for n in SPACE.neighbours(parent))
    assert NB201Space(distinct=True).sample(np.random.default_rng(3)) == distinct.sample(np.random.default_rng(3))


def test_default_space_is_unchanged() -> None:
    assert not SPACE.exclude_degenerate and not SPACE.distinct
    rng = np.random.default_rng(1)
    assert sum(is_degenerate(SPACE.sample(rng)) for _ in range(2000)) > 150  # 12.7 % of the cells


@pytest.fixture(scope="module")
def table():
    if find_data(TABLE_RELATIVE) is None:
        pytest.skip("needs the NB201 table")
    from searchkit.tabular import NB201Table

    return NB201Table.load()


def test_equivalent_cells_have_near_equal_table_accuracy(table) -> None:
    """The benchmark trained every cell separately, so equal classes agree up to training noise:
    the median within-class SD of CIFAR-10 test accuracy is ~0.15 points (the benchmark's own
    seed-to-seed SD is ~0.16), against a median difference of ~3.1 points between random cells."""
    acc = table.column("cifar10", "test", 200)
    sds = [np.std(acc[[SPACE.index(a) for a in members]], ddof=1)
           for members in equivalence_classes().values() if len(members) > 1]
    assert len(sds) == 1211 and np.median(sds) < 0.3
    pairs = np.random.default_rng(0).integers(NUM_ARCHS, size=(5000, 2))
    assert np.median(sds) < 0.1 * np.median(np.abs(acc[pairs[:, 0]] - acc[pairs[:, 1]]))
    identity = acc[[SPACE.index(a) for a in equivalence_classes()["x"]]]
    assert 85 < identity.min() <= identity.max() < 88  # the identity cell: 86.2 .. 87.1 %


def test_suite_zero_scores_exactly_the_cells_without_dead_edges() -> None:
    path = find_data("reference/nasbench-suite-zero_nb201_cifar10.csv")
    if path is None:
        pytest.skip("needs the NAS-Bench-Suite-Zero reference file")
    with open(path, newline="") as f:
        archs = {SPACE.decode(row["net_str"]) for row in csv.DictReader(f)}
    assert len(archs) == 9445 and all(prune(a) == a for a in archs)
