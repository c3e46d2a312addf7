"""A search space restricted to the architectures that satisfy a hardware budget.

:class:`FeasibleSpace` wraps any space with a :class:`~searchkit.hardware.CostModel` and a
:class:`~searchkit.hardware.Constraint` (both from the level below the spaces); a strategy that only calls ``sample``, ``mutate`` and
``neighbours`` on it never sees an infeasible architecture. Everything else (``encode``,
``decode``, ``build``, ``name``, ``index``, ...) is the wrapped space's.

- Table cost (:class:`~searchkit.hardware.EnumerableCost`, e.g. HW-NAS-Bench): the feasible set
  is enumerated once (cost <= limit; unmeasured cells, and cells the space's own sampling options
  leave out, ``space.allows(arch)`` false, excluded); an empty set is a SearchkitError at
  construction, before any scoring. ``sample`` is uniform over it.
- Measured cost: ``sample`` is rejection sampling from the wrapped space, at most ``max_tries``
  draws (each new architecture is timed once), then a SearchkitError naming the cheapest seen.
- Candidates: when the wrapped space is itself a finite set (it has a ``members`` list, like
  the benchmark's ``PoolSpace``) or ``candidates`` are given, the feasible set is the feasible
  candidates (costed once each: table lookups, or one timing each for a measured model).

``mutate``: with an enumerated feasible set and a space offering ``neighbours`` (NB201), a
uniform choice among the feasible one-edge neighbours, the same law as redrawing NB201's uniform
one-edge mutation until it is feasible; otherwise up to ``mutate_tries`` redraws of
``space.mutate``. When that finds nothing: with an enumerated set, like the benchmark's
``PoolSpace``, a uniform choice among the feasible architectures nearest to a mutated child
(:meth:`FeasibleSpace.nearest`, the parent excluded); measured, a fresh feasible sample.

Projection is a capability of the wrapped space: :attr:`FeasibleSpace.projects` is true when it
offers ``features`` (every registered space: NB201 edge ops; DARTS (op, input) of each pair), and
"nearest" is the Hamming distance over them (:func:`~searchkit.spaces.base.feature_matrix`). A
space without ``features`` gets a uniform choice over the feasible set, with a
:class:`ProjectionWarning` saying so.
"""
from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np

from searchkit.errors import SearchkitError
from searchkit.hardware.constraint import Constraint
from searchkit.hardware.cost_models import CostModel, EnumerableCost
from searchkit.spaces.base import SearchSpace, feature_matrix

_WHAT = {"nb201": "NB201 cell", "darts": "DARTS cell"}


class ProjectionWarning(UserWarning):
    """A nearest-feasible projection fell back to a uniform choice: the space offers no ``features``."""


class FeasibleSpace:
    """``space`` restricted to the architectures whose ``cost`` satisfies ``constraint``."""

    def __init__(self, space: SearchSpace, cost: CostModel, constraint: Constraint, max_tries: int = 1000,
                 mutate_tries: int = 20, candidates: Sequence[Any] | None = None) -> None:
        if (cost.device, cost.quantity) != (constraint.device, constraint.quantity):
            raise SearchkitError(f"the cost model gives {cost.device} {cost.quantity}, the constraint is on "
                                 f"{constraint.device} {constraint.quantity}")
        if max_tries < 1 or mutate_tries < 1:
            raise SearchkitError(f"max_tries and mutate_tries must be >= 1, got {max_tries} and {mutate_tries}")
        self.space, self.cost, self.constraint = space, cost, constraint
        self.max_tries, self.mutate_tries = max_tries, mutate_tries
        self.what = _WHAT.get(space.name, f"{space.name} architecture")
        #: whether the space offers a projection: Hamming distance over its ``features``
        self.projects = callable(getattr(space, "features", None))
        self.members: list[Any] | None = None
        if candidates is None:
            candidates = getattr(space, "members", None)
        if candidates is not None:
            candidates = list(candidates)
            texts = [space.encode(a) for a in candidates]
            if isinstance(cost, EnumerableCost):
                lookup = dict(zip(*cost.all_costs()))
                values = np.array([lookup.get(t, np.nan) for t in texts], dtype=np.float64)
            else:
                values = cost.costs(texts)
            mask = constraint.require_achievable(values, f"{self.what} of the {len(candidates)} candidates")
            self._set_members([candidates[i] for i in np.flatnonzero(mask)])
        elif isinstance(cost, EnumerableCost):
            texts, values = cost.all_costs()
            archs = [space.decode(t) for t in texts]
            allows = getattr(space, "allows", None)
            if allows is not None:  # the space's own sampling options (e.g. no degenerate NB201 cells)
                kept = [i for i, arch in enumerate(archs) if allows(arch)]
                archs, values = [archs[i] for i in kept], np.asarray(values)[kept]
            mask = constraint.require_achievable(values, self.what)
            self._set_members([archs[i] for i in np.flatnonzero(mask)])

    def _set_members(self, members: list[Any]) -> None:
        self.members = members
        self._position = {arch: i for i, arch in enumerate(members)}
        self._codes = feature_matrix(self.space, members) if self.projects else None

    def __getattr__(self, name: str) -> Any:
        if name == "space":  # not yet set (copy/pickle): avoid recursion
            raise AttributeError(name)
        return getattr(self.space, name)

    def __repr__(self) -> str:
        size = "" if self.members is None else f", {len(self.members)} feasible"
        return f"FeasibleSpace({self.space.name}, {self.constraint}{size})"

    # --------------------------------------------------------------------- feasibility
    def arch_cost(self, arch: Any) -> float:
        """The cost model's value for ``arch``."""
        return self.cost.cost(self.space.encode(arch))

    def is_feasible(self, arch: Any) -> bool:
        """Whether ``arch`` meets the budget (with a table: whether it is a feasible member)."""
        if self.members is not None:
            return arch in self._position
        return self.constraint.satisfied(self.arch_cost(arch))

    # --------------------------------------------------------------------- the space protocol
    def sample(self, rng: np.random.Generator) -> Any:
        if self.members is not None:
            return self.members[int(rng.integers(len(self.members)))]
        seen = []
        for _ in range(self.max_tries):
            arch = self.space.sample(rng)
            if self.is_feasible(arch):
                return arch
            seen.append(self.arch_cost(arch))
        raise SearchkitError(
            f"no {self.what} among {self.max_tries} samples meets {self.constraint}; the cheapest sampled has "
            f"{self.constraint.quantity} {min(seen):.4g} {self.constraint.unit}; raise {self.constraint.key}"
        )

    def mutate(self, arch: Any, rng: np.random.Generator) -> Any:
        """A feasible mutant of ``arch`` (see the module docstring for the law)."""
        if self.members is not None and callable(getattr(self.space, "neighbours", None)):
            candidates = self.neighbours(arch)
            if candidates:
                return candidates[int(rng.integers(len(candidates)))]
            child = self.space.mutate(arch, rng)
        else:
            for _ in range(self.mutate_tries):
                child = self.space.mutate(arch, rng)
                if self.is_feasible(child):
                    return child
        if self.members is None:
            return self.sample(rng)
        return self.nearest(child, rng, exclude=arch)

    def neighbours(self, arch: Any) -> list[Any]:
        """The wrapped space's neighbours of ``arch`` that are feasible."""
        return [n for n in self.space.neighbours(arch) if self.is_feasible(n)]

    # --------------------------------------------------------------------- projection
    def nearest(self, arch: Any, rng: np.random.Generator, exclude: Any = None) -> Any:
        """A uniform choice among the feasible architectures nearest to ``arch`` in Hamming distance
        over the space's ``features`` (NB201: differing edges), ``exclude`` left out unless it is
        the only one (table costs or a finite pool only). Without ``features`` (:attr:`projects`
        false): uniform over the feasible set, with a :class:`ProjectionWarning`."""
        if self.members is None:
            raise SearchkitError("nearest feasible architecture needs a table cost model (an enumerable feasible set)")
        if self._codes is None:
            warnings.warn(f"the {self.space.name} space offers no features: the nearest feasible architecture is "
                          "a uniform choice over the feasible set", ProjectionWarning, stacklevel=2)
            distance = np.zeros(len(self.members))
        else:
            distance = (self._codes != feature_matrix(self.space, [arch])[0]).sum(1).astype(np.float64)
        if exclude in self._position and len(self.members) > 1:
            distance[self._position[exclude]] = np.inf
        nearest = np.flatnonzero(distance == distance.min())
        return self.members[int(nearest[rng.integers(len(nearest))])]

    def project(self, arch: Any, rng: np.random.Generator) -> Any:
        """``arch`` if feasible, else :meth:`nearest` to it. Hamming distance ignores what the ops
        do: the nearest feasible cell may be degenerate (e.g. every edge into the output ``none``);
        a one-shot strategy with op probabilities should prefer :meth:`most_likely`."""
        return arch if self.is_feasible(arch) else self.nearest(arch, rng)

    def most_likely(self, log_probs: np.ndarray, ops: Sequence[str]) -> Any:
        """The feasible architecture of highest probability under independent per-edge op
        distributions: argmax over the feasible set of sum_e log_probs[e, op_e]; ``log_probs`` (E, K)
        with columns in ``ops`` order (e.g. a one-shot supernet's architecture parameters after
        log-softmax). Ties: the first member. Exact constrained decoding (table costs only). The
        columns are matched to the members' ops by name (a supernet's ``ops`` need not share the
        order of the space's features), so the architectures need an ``ops`` tuple (NB201 cells)."""
        if self.members is None or not all(isinstance(getattr(a, "ops", None), tuple) for a in self.members):
            raise SearchkitError("most_likely needs a table cost model and architectures with an ops tuple")
        column = {op: k for k, op in enumerate(ops)}
        try:
            index = np.array([[column[op] for op in a.ops] for a in self.members], dtype=np.int64)
        except KeyError as e:
            raise SearchkitError(f"op {e} of the feasible set is not among ops {list(ops)}") from None
        log_probs = np.asarray(log_probs, dtype=np.float64)
        scores = log_probs[np.arange(index.shape[1]), index].sum(1)
        return self.members[int(np.argmax(scores))]

