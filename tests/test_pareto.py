"""Pareto bookkeeping and NSGA-II selection against brute-force references on small sets."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from searchkit import pareto
from searchkit.errors import SearchkitError
from searchkit.pareto import (crowding_distance, dominates, hypervolume, nondominated_ranks, normalise, pareto_front,
                              pareto_mask, rank_and_crowding, reference_point, relative_hypervolume)
from searchkit.spaces import NB201Space
from searchkit.strategies.nsga2 import NSGA2Population, binary_tournament, environmental_selection


def random_points(rng: np.random.Generator, n: int, grid: int | None = None) -> np.ndarray:
    """(score, cost) points; on a small integer grid there are many ties and duplicates."""
    if grid is None:
        return rng.normal(size=(n, 2))
    return rng.integers(grid, size=(n, 2)).astype(np.float64)


def brute_ranks(points: np.ndarray) -> np.ndarray:
    """Peel non-dominated sets by the definition, O(n^3)."""
    ranks = np.full(len(points), -1)
    rank = 0
    while (ranks < 0).any():
        left = np.flatnonzero(ranks < 0)
        front = [i for i in left if not any(dominates(points[j], points[i]) for j in left)]
        ranks[front] = rank
        rank += 1
    return ranks


def brute_hypervolume(points: np.ndarray, ref: tuple[float, float]) -> float:
    """Exact area of the union of boxes [score_i .. ref score] x [cost_i .. ref cost] by coordinate
    compression: every elementary cell of the grid of all coordinates is in or out as a whole."""
    xs = np.unique(np.r_[points[:, 0], ref[0]])
    ys = np.unique(np.r_[points[:, 1], ref[1]])
    area = 0.0
    for (x0, x1), (y0, y1) in itertools.product(zip(xs[:-1], xs[1:]), zip(ys[:-1], ys[1:])):
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        if cx > ref[0] and cy < ref[1] and np.any((points[:, 0] >= cx) & (points[:, 1] <= cy)):
            area += (x1 - x0) * (y1 - y0)
    return area


@pytest.mark.parametrize("grid", [None, 4, 7])
def test_fronts_match_brute_force(grid: int | None) -> None:
    rng = np.random.default_rng(grid or 0)
    for n in (1, 2, 5, 17, 40):
        for _ in range(5):
            pts = random_points(rng, n, grid)
            expected = brute_ranks(pts)
            np.testing.assert_array_equal(nondominated_ranks(pts), expected)
            np.testing.assert_array_equal(pareto_mask(pts), expected == 0)
            front = pareto_front(pts)
            assert set(front) == set(np.flatnonzero(expected == 0))
            assert np.all(np.diff(pts[front, 1]) >= 0)


def test_ranks_in_blocks_equal_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    pts = random_points(np.random.default_rng(5), 300, grid=20)
    whole = nondominated_ranks(pts)
    monkeypatch.setattr(pareto, "BLOCK", 7)
    np.testing.assert_array_equal(nondominated_ranks(pts), whole)


def test_ties_and_duplicates() -> None:
    pts = np.array([[1, 1], [1, 1], [1, 2], [2, 2], [0, 0], [2, 2]], dtype=float)
    # duplicates do not dominate each other; (1, 2) is dominated by (1, 1) and by (2, 2)
    np.testing.assert_array_equal(pareto_mask(pts), [True, True, False, True, True, True])
    np.testing.assert_array_equal(nondominated_ranks(pts), [0, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(pareto_front(pts), [4, 0, 1, 3, 5])
    assert not dominates(pts[0], pts[1]) and dominates(pts[0], pts[2]) and dominates(pts[3], pts[2])
    assert pareto_mask(np.zeros((0, 2))).shape == (0,)
    with pytest.raises(ValueError, match="finite"):
        pareto_mask([[np.nan, 1.0]])
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        pareto_mask([1.0, 2.0])


@pytest.mark.parametrize("grid", [None, 5])
def test_hypervolume_matches_coordinate_compression(grid: int | None) -> None:
    rng = np.random.default_rng(11)
    for n in (1, 3, 8, 25):
        for _ in range(5):
            pts = random_points(rng, n, grid)
            ref = (float(pts[:, 0].min()) - 0.5, float(pts[:, 1].max()) + 0.5)
            assert hypervolume(pts, ref) == pytest.approx(brute_hypervolume(pts, ref), rel=1e-12)
            inner = (float(np.median(pts[:, 0])), float(np.median(pts[:, 1])))  # some points beyond it
            assert hypervolume(pts, inner) == pytest.approx(brute_hypervolume(pts, inner), rel=1e-12, abs=1e-12)


def test_hypervolume_known_values() -> None:
    pts = np.array([[1, 0.5], [2, 2], [3, 3], [1, 1], [0, 3]])
    assert hypervolume(pts, (0, 4)) == pytest.approx(1.5 * 1 + 1 * 2 + 1 * 3)
    assert hypervolume(pts, (5, 4)) == 0.0 and hypervolume(np.zeros((0, 2)), (0, 1)) == 0.0
    assert hypervolume([[2.0, 1.0]], (0.0, 3.0)) == pytest.approx(4.0)


def test_crowding_distance_known_values() -> None:
    line = np.array([[i, i] for i in range(5)], dtype=float)
    np.testing.assert_allclose(crowding_distance(line), [np.inf, 1.0, 1.0, 1.0, np.inf])
    uneven = np.array([[0, 0], [1, 1], [4, 2], [10, 10]], dtype=float)
    # point 1: (4 - 0) / 10 + (2 - 0) / 10; point 2: (10 - 1) / 10 + (10 - 1) / 10
    np.testing.assert_allclose(crowding_distance(uneven), [np.inf, 0.6, 1.8, np.inf])
    np.testing.assert_array_equal(crowding_distance(line[:2]), [np.inf, np.inf])
    flat = np.array([[1, 0], [1, 1], [1, 3]], dtype=float)  # no spread in score: it adds 0
    np.testing.assert_allclose(crowding_distance(flat), [np.inf, 1.0, np.inf])


def test_crowding_is_per_front() -> None:
    pts = np.array([[0, 0], [1, 1], [2, 2], [0, 1], [1, 2], [2, 3]], dtype=float)
    ranks, crowding = rank_and_crowding(pts)
    np.testing.assert_array_equal(ranks, [0, 0, 0, 1, 1, 1])
    np.testing.assert_allclose(crowding, [np.inf, 2.0, np.inf, np.inf, 2.0, np.inf])


def test_relative_hypervolume_and_normalisation() -> None:
    rng = np.random.default_rng(4)
    everything = random_points(rng, 200)
    front = everything[pareto_mask(everything)]
    assert relative_hypervolume(everything, everything) == pytest.approx(1.0)
    assert relative_hypervolume(front, everything) == pytest.approx(1.0)
    subset = everything[:50]
    ratio = relative_hypervolume(subset, everything)
    assert 0.0 < ratio < 1.0
    ideal, nadir = pareto.front_bounds(everything)
    ref = reference_point(everything, margin=0.1)
    np.testing.assert_allclose(ref, nadir + 0.1 * (nadir - ideal))
    z = normalise(everything, ideal, nadir)
    np.testing.assert_allclose(normalise(np.array([ideal, nadir]), ideal, nadir), [[1, 0], [0, 1]])
    z_ref = normalise(ref[None], ideal, nadir)[0]
    np.testing.assert_allclose(z_ref, [-0.1, 1.1])
    assert relative_hypervolume(z[:50], z, ref=z_ref) == pytest.approx(ratio)  # affine invariance
    with pytest.raises(ValueError, match="dominates no area"):
        relative_hypervolume(subset, everything, ref=(np.inf, -np.inf))


# ---------------------------------------------------------------- NSGA-II selection
def test_environmental_selection_fills_fronts_then_crowding() -> None:
    # front 0: 4 points on a line; front 1: 3 points
    pts = np.array([[0, 0], [1, 1], [2, 2], [3, 3], [0, 1], [1, 2], [2, 3]], dtype=float)
    np.testing.assert_array_equal(environmental_selection(pts, 4), [0, 3, 1, 2])
    chosen = environmental_selection(pts, 6)
    assert set(chosen[:4]) == {0, 1, 2, 3} and set(chosen[4:]) == {4, 6}  # the extremes of front 1 first
    np.testing.assert_array_equal(environmental_selection(pts, 10), np.arange(7))


def test_environmental_selection_matches_brute_force() -> None:
    rng = np.random.default_rng(8)
    for _ in range(20):
        pts = random_points(rng, 30, grid=6)
        size = int(rng.integers(1, 30))
        chosen = environmental_selection(pts, size)
        ranks = brute_ranks(pts)
        assert len(chosen) == size == len(set(chosen))
        cutoff = ranks[chosen].max()
        assert set(np.flatnonzero(ranks < cutoff)) <= set(chosen)  # every better front whole
        last = np.flatnonzero(ranks == cutoff)
        crowd = crowding_distance(pts[last])
        kept = np.isin(last, chosen)
        assert crowd[kept].min() >= crowd[~kept].max(initial=-np.inf)


def test_binary_tournament_prefers_rank_then_crowding() -> None:
    ranks = np.array([0, 1, 1, 2])
    crowding = np.array([0.5, np.inf, 0.1, np.inf])
    rng = np.random.default_rng(0)
    winners = binary_tournament(ranks, crowding, 4000, rng)
    freq = np.bincount(winners, minlength=4) / 4000
    # P(win) for member i = P(i drawn in a pair) x P(beats the other): 0 beats all (1/2),
    # 1 beats 2 and 3 (1/3), 2 beats 3 (1/6), 3 never wins
    np.testing.assert_allclose(freq, [1 / 2, 1 / 3, 1 / 6, 0], atol=0.03)
    again = binary_tournament(ranks, crowding, 4000, np.random.default_rng(0))
    np.testing.assert_array_equal(winners, again)


def nb201_objectives(space: NB201Space, arch) -> tuple[float, float]:
    """A synthetic trade-off: score = #conv edges + small op bonus, cost = weighted op count."""
    score = sum(op.startswith("nor_conv") for op in arch.ops) + 0.1 * sum(op == "skip_connect" for op in arch.ops)
    cost = sum({"nor_conv_3x3": 3.0, "nor_conv_1x1": 1.0, "avg_pool_3x3": 0.5}.get(op, 0.0) for op in arch.ops)
    return score, cost


def run_nsga2(seed: int, generations: int = 15, size: int = 12) -> NSGA2Population:
    space, rng = NB201Space(), np.random.default_rng(seed)
    population = NSGA2Population(size, rng)
    population.survive([(a, nb201_objectives(space, a)) for a in (space.sample(rng) for _ in range(size))])
    for _ in range(generations):
        children = population.offspring(space)
        population.survive([(a, nb201_objectives(space, a)) for a in children])
    return population


def test_nsga2_population_is_deterministic_and_improves() -> None:
    space = NB201Space()
    first, again = run_nsga2(0), run_nsga2(0)
    assert first.members == again.members
    assert len(first.members) == 12 == len({a for a, _ in first.members})
    front = np.array([o for _, o in first.front()])
    # the true front of this synthetic problem, by enumeration of all 15,625 cells
    every = np.array([nb201_objectives(space, space.from_code(c)) for c in range(15625)])
    true = every[pareto_mask(every)]
    ref = (-1.0, 19.0)
    initial = NSGA2Population(12, np.random.default_rng(0))
    rng = np.random.default_rng(0)
    initial.survive([(a, nb201_objectives(space, a)) for a in (space.sample(rng) for _ in range(12))])
    start = hypervolume(initial.points(), ref) / hypervolume(true, ref)
    end = hypervolume(front, ref) / hypervolume(true, ref)
    # random search with the same 12 x 16 evaluations
    randoms = np.array([nb201_objectives(space, space.sample(rng)) for _ in range(12 * 16)])
    assert end > hypervolume(randoms, ref) / hypervolume(true, ref) > start and end > 0.95


def test_nsga2_state_round_trip_and_errors() -> None:
    space = NB201Space()
    population = run_nsga2(1, generations=2, size=4)
    rows = population.state(space)
    restored = NSGA2Population(4, np.random.default_rng(0))
    restored.load_state(space, rows)
    assert restored.members == population.members
    with pytest.raises(SearchkitError, match="size >= 2"):
        NSGA2Population(1, np.random.default_rng(0))
    with pytest.raises(SearchkitError, match="no population to breed from"):
        NSGA2Population(3, np.random.default_rng(0)).offspring(space)


def test_hypervolume_agrees_with_botorch() -> None:
    """The exact sweep against botorch's box-decomposition hypervolume (maximisation: the cost negated)."""
    torch = pytest.importorskip("torch")
    from botorch.utils.multi_objective.hypervolume import Hypervolume
    from botorch.utils.multi_objective.pareto import is_non_dominated

    rng = np.random.default_rng(3)
    for n, ref in ((1, (0.0, 1.0)), (40, (0.1, 0.9)), (300, (-0.5, 2.0))):
        pts = np.round(rng.random((n, 2)), 2)  # ties included
        y = torch.tensor(np.c_[pts[:, 0], -pts[:, 1]], dtype=torch.float64)
        y = y[(y > torch.tensor([ref[0], -ref[1]], dtype=torch.float64)).all(1)]
        expected = Hypervolume(torch.tensor([ref[0], -ref[1]], dtype=torch.float64)).compute(y[is_non_dominated(y)]) \
            if len(y) else 0.0
        assert hypervolume(pts, ref) == pytest.approx(expected, rel=1e-12, abs=1e-15)
