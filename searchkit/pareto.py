"""Pareto bookkeeping for two objectives: a score to MAXIMISE and a cost to MINIMISE.

Convention, everywhere in this module: a set of points is an array of shape (n, 2) whose column
0 is maximised (accuracy, validation accuracy or a training-free score) and column 1 minimised
(latency, energy). Point a dominates b when a[0] >= b[0] and a[1] <= b[1] with one inequality
strict; identical points do not dominate each other, so duplicates share a front.

Non-dominated sorting and crowding distance follow NSGA-II (Deb, Pratap, Agarwal & Meyarivan,
"A Fast and Elitist Multiobjective Genetic Algorithm: NSGA-II", IEEE TEVC 6(2), 2002): section
III-A (fast non-dominated sort) and III-B (crowding distance). The hypervolume is the area
dominated by a set and bounded by a reference point, computed exactly by a sorted sweep.
"""
from __future__ import annotations

import numpy as np

#: rows of the domination matrix built at once in :func:`nondominated_ranks` (bounds memory to BLOCK x n)
BLOCK = 1024


def as_points(points: np.ndarray | list) -> np.ndarray:
    """``points`` as a float64 array (n, 2) of finite values; ValueError otherwise."""
    arr = np.asarray(points, dtype=np.float64)
    if arr.size == 0:
        return arr.reshape(0, 2)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"points must have shape (n, 2) (score, cost), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("points must be finite (map failed scores to the metric's worst value first)")
    return arr


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether point ``a`` (score, cost) dominates point ``b``."""
    return bool(a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1]))


def _dominated_by_rows(points: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """D[k, j] = points[rows[k]] dominates points[j], shape (len(rows), n)."""
    a, b = points[rows, None, :], points[None, :, :]
    weak = (a[..., 0] >= b[..., 0]) & (a[..., 1] <= b[..., 1])
    return weak & ((a[..., 0] > b[..., 0]) | (a[..., 1] < b[..., 1]))


def _dominated_counts(points: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """For every point j, how many of ``points[rows]`` dominate it, shape (n,), in row blocks."""
    counts = np.zeros(len(points), dtype=np.int64)
    for start in range(0, len(rows), BLOCK):
        counts += _dominated_by_rows(points, rows[start:start + BLOCK]).sum(0)
    return counts


def nondominated_ranks(points: np.ndarray | list) -> np.ndarray:
    """Front index of every point (0 = non-dominated), shape (n,), int64.

    Deb et al. 2002, sec. III-A: n_p = how many points dominate p; the first front is
    {n_p = 0}; removing a front decrements n_q for every q its members dominate, and the next
    front is the new zeros. Vectorised over blocks of the domination matrix (each member's row
    S_p is built once, when its front is removed): O(n^2) time, O(BLOCK n) memory.
    """
    pts = as_points(points)
    n = len(pts)
    ranks = np.full(n, -1, dtype=np.int64)
    counts = _dominated_counts(pts, np.arange(n))
    front, rank = np.flatnonzero(counts == 0), 0
    while len(front):
        ranks[front] = rank
        counts -= _dominated_counts(pts, front)
        counts[ranks >= 0] = -1
        front, rank = np.flatnonzero(counts == 0), rank + 1
    return ranks


def pareto_mask(points: np.ndarray | list) -> np.ndarray:
    """Whether each point is non-dominated, shape (n,) bool; O(n log n) for any n.

    Sweep in order of cost (ties: score descending): a point is non-dominated iff it has the best
    score of its cost group and a score strictly above every point of lower cost.
    """
    pts = as_points(points)
    n = len(pts)
    if n == 0:
        return np.zeros(0, dtype=bool)
    order = np.lexsort((-pts[:, 0], pts[:, 1]))
    score, cost = pts[order, 0], pts[order, 1]
    new_group = np.r_[True, cost[1:] != cost[:-1]]
    group = np.cumsum(new_group) - 1
    group_best = score[new_group]  # sorted by score descending within a group: its first is its best
    best_before = np.r_[-np.inf, np.maximum.accumulate(group_best)[:-1]]
    keep = (score == group_best[group]) & (score > best_before[group])
    mask = np.zeros(n, dtype=bool)
    mask[order[keep]] = True
    return mask


def pareto_front(points: np.ndarray | list) -> np.ndarray:
    """Indices of the non-dominated points, ordered by cost ascending (ties: index), shape (k,)."""
    pts = as_points(points)
    idx = np.flatnonzero(pareto_mask(pts))
    return idx[np.argsort(pts[idx, 1], kind="stable")]


def crowding_distance(points: np.ndarray | list) -> np.ndarray:
    """Crowding distance of the points of ONE front, shape (n,) (Deb et al. 2002, sec. III-B).

    Per objective, points sorted by it (stable: ties keep index order) get inf at both ends and
    (f[next] - f[prev]) / (f_max - f_min) inside; distances add over the two objectives. An
    objective on which all points are equal adds 0 inside (the paper divides by zero there).
    """
    pts = as_points(points)
    n = len(pts)
    distance = np.zeros(n)
    if n <= 2:
        distance[:] = np.inf
        return distance
    for m in range(2):
        order = np.argsort(pts[:, m], kind="stable")
        f = pts[order, m]
        span = f[-1] - f[0]
        if span > 0:
            distance[order[1:-1]] += (f[2:] - f[:-2]) / span
        distance[order[[0, -1]]] = np.inf
    return distance


def rank_and_crowding(points: np.ndarray | list) -> tuple[np.ndarray, np.ndarray]:
    """(front index, crowding distance within its front) of every point, both shape (n,)."""
    pts = as_points(points)
    ranks = nondominated_ranks(pts)
    crowding = np.zeros(len(pts))
    for r in range(int(ranks.max(initial=-1)) + 1):
        members = np.flatnonzero(ranks == r)
        crowding[members] = crowding_distance(pts[members])
    return ranks, crowding


def hypervolume(points: np.ndarray | list, ref: np.ndarray | tuple[float, float]) -> float:
    """Area dominated by ``points`` and dominating ``ref`` = (score floor, cost ceiling).

    Exact: only points strictly better than ``ref`` in both objectives count; on their front
    sorted by cost ascending (score then ascending too), the strip between consecutive costs
    c_i <= c < c_{i+1} (c_{k+1} = ref cost) is covered up to score s_i, so
    HV = sum_i (c_{i+1} - c_i) (s_i - ref score).
    """
    pts = as_points(points)
    r_score, r_cost = float(ref[0]), float(ref[1])
    pts = pts[(pts[:, 0] > r_score) & (pts[:, 1] < r_cost)]
    if len(pts) == 0:
        return 0.0
    front = pts[pareto_front(pts)]
    widths = np.diff(np.r_[front[:, 1], r_cost])
    return float(np.sum(widths * (front[:, 0] - r_score)))


def front_bounds(points: np.ndarray | list) -> tuple[np.ndarray, np.ndarray]:
    """(ideal, nadir) of the non-dominated points: ideal = (max score, min cost), nadir = (min
    score, max cost) over the front, each shape (2,)."""
    pts = as_points(points)
    if len(pts) == 0:
        raise ValueError("front_bounds needs at least one point")
    front = pts[pareto_mask(pts)]
    return (np.array([front[:, 0].max(), front[:, 1].min()]),
            np.array([front[:, 0].min(), front[:, 1].max()]))


def reference_point(points: np.ndarray | list, margin: float = 0.1) -> np.ndarray:
    """The front's nadir moved ``margin`` x (nadir - ideal) further from the ideal, shape (2,): with
    margin > 0 the extreme points of the front add area too (margin 0: the nadir itself)."""
    ideal, nadir = front_bounds(points)
    return nadir + margin * (nadir - ideal)


def normalise(points: np.ndarray | list, ideal: np.ndarray, nadir: np.ndarray) -> np.ndarray:
    """Points mapped affinely so that ``ideal`` -> (1, 0) and ``nadir`` -> (0, 1), shape (n, 2);
    the convention (column 0 maximised) is kept. Hypervolume ratios are unchanged by it. An
    objective with ideal == nadir is only shifted."""
    pts = as_points(points)
    ideal, nadir = np.asarray(ideal, dtype=np.float64), np.asarray(nadir, dtype=np.float64)
    scale = np.array([ideal[0] - nadir[0], nadir[1] - ideal[1]])
    scale[scale == 0] = 1.0
    return (pts - np.array([nadir[0], ideal[1]])) / scale


def relative_hypervolume(found: np.ndarray | list, true_points: np.ndarray | list,
                         ref: np.ndarray | tuple[float, float] | None = None, margin: float = 0.1) -> float:
    """HV(found) / HV(true_points) with one reference point (default: :func:`reference_point` of
    ``true_points`` with ``margin``). ``true_points`` is every candidate (e.g. all 15,625 NB201
    cells as (test accuracy, latency)); its front is the true front, so found points drawn from
    the candidates give a ratio in [0, 1]."""
    true_pts = as_points(true_points)
    ref = reference_point(true_pts, margin) if ref is None else np.asarray(ref, dtype=np.float64)
    total = hypervolume(true_pts, ref)
    if total <= 0:
        raise ValueError(f"the true front dominates no area beyond the reference point {ref.tolist()}")
    return hypervolume(found, ref) / total
