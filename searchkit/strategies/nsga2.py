"""NSGA-II (Deb et al., IEEE TEVC 6(2), 2002) for architectures with two objectives: the run's
value (a training-free score, or a validation accuracy) to maximise and the hardware cost to
minimise (see :mod:`searchkit.pareto`). :class:`NSGA2Population` is the selection machinery;
:class:`NSGA2` is the registered strategy ``nsga2`` built on it.

One generation (sec. III-C, the main loop): N offspring are bred from the parent population P_t
by binary tournaments on the crowded-comparison operator (sec. III-B: lower front first, then
larger crowding distance) and mutation; P_t and the offspring Q_t are merged and the next
population P_{t+1} is filled front by front, the last front that does not fit entering in order
of decreasing crowding distance.

Departures from the paper, for discrete search spaces: no crossover (the space protocol offers
``mutate`` only; a child is the mutation of one tournament winner, as in REA); duplicates of
an architecture are merged before environmental selection (the first occurrence is kept), so
that copies do not crowd out distinct architectures; ties in the crowded comparison and in
truncation go to the earlier member (members are ordered, every draw comes from ``rng``), so a
seeded run is deterministic.
"""
from __future__ import annotations

from typing import Any, Hashable, Mapping, Sequence

import numpy as np

from searchkit.errors import SearchkitError
from searchkit.pareto import as_points, rank_and_crowding
from searchkit.spaces.base import SearchSpace
from searchkit.strategies.base import (COST, Answer, Needs, Query, Score, Strategy, Validate, distinct_samples,
                                       strategy)

#: an evaluated architecture: (arch, (score, cost))
Member = tuple[Hashable, tuple[float, float]]


def crowded_better(ranks: np.ndarray, crowding: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Deb's crowded-comparison i <_n j, elementwise over index arrays: lower rank, or the same
    rank and larger crowding distance. Returns a bool array (True: i wins; ties: False)."""
    return (ranks[i] < ranks[j]) | ((ranks[i] == ranks[j]) & (crowding[i] > crowding[j]))


def binary_tournament(ranks: np.ndarray, crowding: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` winners of binary tournaments, shape (size,): each compares two distinct members
    drawn uniformly (pairs independent across tournaments); a tie goes to the first drawn."""
    n = len(ranks)
    if n < 2:
        return np.zeros(size, dtype=np.int64)
    first = rng.integers(n, size=size)
    second = (first + rng.integers(1, n, size=size)) % n  # uniform over the other n-1 members
    loses = crowded_better(ranks, crowding, second, first)
    return np.where(loses, second, first)


def environmental_selection(points: np.ndarray | list, size: int) -> np.ndarray:
    """Indices of the ``size`` survivors of ``points`` (n, 2) (all of them if n <= size), in
    order of selection: whole fronts by rank, then the last front by decreasing crowding distance
    (stable). Deb et al. 2002, sec. III-C."""
    pts = as_points(points)
    if len(pts) <= size:
        return np.arange(len(pts))
    ranks, crowding = rank_and_crowding(pts)
    order = np.lexsort((-crowding, ranks))  # rank ascending, then crowding descending; stable
    return order[:size]


class NSGA2Population:
    """The NSGA-II population of (arch, (score, cost)) members, ``size`` of them once full.

    ``offspring(space, n)`` breeds children (tournament + ``space.mutate``); ``survive(new)``
    merges evaluated members into the population by environmental selection. The caller
    evaluates every architecture (score and cost) between the two. ``members`` round-trips
    through :meth:`state` / :meth:`load_state` with the space's text codec.
    """

    def __init__(self, size: int, rng: np.random.Generator) -> None:
        if size < 2:
            raise SearchkitError(f"the NSGA-II population needs size >= 2, got {size}")
        self.size, self.rng = size, rng
        self.members: list[Member] = []

    def points(self) -> np.ndarray:
        """(score, cost) of the members, shape (len(members), 2)."""
        return as_points([objectives for _, objectives in self.members])

    def offspring(self, space: SearchSpace, n: int | None = None) -> list[Any]:
        """``n`` (default ``size``) children: mutations of binary-tournament winners."""
        if not self.members:
            raise SearchkitError("NSGA-II has no population to breed from yet; evaluate initial samples first")
        ranks, crowding = rank_and_crowding(self.points())
        winners = binary_tournament(ranks, crowding, self.size if n is None else n, self.rng)
        return [space.mutate(self.members[int(w)][0], self.rng) for w in winners]

    def survive(self, evaluated: Sequence[Member]) -> None:
        """P_{t+1}: environmental selection of size ``size`` over the members and ``evaluated``
        (duplicate architectures merged, the first kept)."""
        pool: dict[Hashable, tuple[float, float]] = {}
        for arch, objectives in [*self.members, *evaluated]:
            pool.setdefault(arch, (float(objectives[0]), float(objectives[1])))
        merged = list(pool.items())
        keep = environmental_selection([o for _, o in merged], self.size)
        self.members = [merged[int(i)] for i in keep]

    def front(self) -> list[Member]:
        """The members of rank 0."""
        if not self.members:
            return []
        ranks, _ = rank_and_crowding(self.points())
        return [m for m, r in zip(self.members, ranks) if r == 0]

    def state(self, space: SearchSpace) -> list[tuple[str, float, float]]:
        """The members as (text, score, cost) rows."""
        return [(space.encode(arch), s, c) for arch, (s, c) in self.members]

    def load_state(self, space: SearchSpace, rows: Sequence[Sequence[Any]]) -> None:
        """Inverse of :meth:`state`."""
        self.members = [(space.decode(text), (float(s), float(c))) for text, s, c in rows]


#: the finite stand-in for a non-finite value (a degenerate network's worst score): below every real value
FLOOR = -1e300
#: generations in a row that bring no new architecture end the search (a space smaller than the population)
MAX_STALE = 100


def objectives(answer: Answer) -> tuple[float, float]:
    """(value, cost) of an answer; a non-finite value becomes :data:`FLOOR`."""
    value = float(answer.value)
    return (value if np.isfinite(value) else FLOOR), float(answer.extras[COST])


@strategy("nsga2")
class NSGA2(Strategy):
    """Multi-objective evolution: NSGA-II over (the run's value, the architecture's hardware cost).

    The first population is ``population`` distinct uniform samples; each generation breeds
    ``population`` children (binary tournaments on the crowded comparison, then the space's
    mutation; see :class:`NSGA2Population` for the departures from the paper) and keeps the best
    ``population`` of parents and children by non-dominated rank and crowding. Children that were
    already answered are not asked again. The value is the run's: a training-free score, or the
    validation accuracy with ``metric.name: validation``. ``generations``: how many generations
    (null: until the budget ends).

    ``validate`` (hybrid): after ``generations`` generations on the training-free score (which
    cost no training), the score population is validated in NSGA-II's order of preference (front
    by front, larger crowding distance first: each front's extremes first), and NSGA-II continues
    on (validation accuracy, cost), its population started from the validated members. The run's
    front is then the validated one with the scored front's cells not validated
    (:func:`searchkit.front.found_front`).

    Every answer carries the architecture's cost (``Needs.cost``: the engine adds it), so a cost is
    computed once per architecture and run. The answer the run reports is the driver's incumbent
    (the best value); the front is written to ``front.csv``.
    """

    @classmethod
    def needs(cls, options: Mapping[str, Any]) -> Needs:
        return Needs(cost=True, validation=options["validate"], training_free=options["validate"])

    def __init__(self, space: SearchSpace, rng: np.random.Generator, population: int = 20,
                 generations: int | None = None, validate: bool = False) -> None:
        if population < 2 or (generations is not None and generations < 0):
            raise SearchkitError(f"nsga2 needs population >= 2 and generations >= 0 (or null); got {population} "
                                 f"and {generations}")
        if validate and generations is None:
            raise SearchkitError("nsga2 with validate: true needs generations (how many generations of training-free "
                                 "evolution come before the validations), e.g. generations: 10")
        super().__init__(space, rng)
        self.size, self.generations, self.validate = population, generations, validate
        self.population = NSGA2Population(population, rng)
        self.known: dict[Any, tuple[float, float]] = {}
        self.pending: list[Any] = distinct_samples(space, rng, population)
        self.generation = 0
        self.validating = False
        self.stale = 0

    @property
    def _query(self) -> type:
        return Validate if self.validating else Score

    def ask(self) -> list[Query]:
        while True:
            unknown = list(dict.fromkeys(a for a in self.pending if a not in self.known))
            if unknown:
                self.stale = 0
                return [self._query(arch) for arch in unknown]
            if not self._next_generation():
                return []

    def tell(self, query: Query, answer: Answer) -> None:
        if isinstance(query, self._query):
            self.known[query.arch] = objectives(answer)

    def _next_generation(self) -> bool:
        """Select the survivors of the pending (all answered) architectures and breed the next
        ones; False when the search is over."""
        self.population.survive([(a, self.known[a]) for a in dict.fromkeys(self.pending)])
        self.generation += 1
        self.stale += 1  # reset by the next ask that has a new architecture to query
        if self.stale >= MAX_STALE:
            return False
        if self.generations is not None and self.generation > self.generations:
            if not self.validate or self.validating:
                return False
            self._start_validating()
            return True
        self.pending = self.population.offspring(self.space)
        return True

    def _start_validating(self) -> None:
        """The hybrid's switch: validate the score population, best-preferred first."""
        ranks, crowding = rank_and_crowding(self.population.points())
        order = np.lexsort((-crowding, ranks))
        self.pending = [self.population.members[int(i)][0] for i in order]
        self.validating, self.generations, self.generation = True, None, 0
        self.known = {}
        self.population = NSGA2Population(self.size, self.rng)
