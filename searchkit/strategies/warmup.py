"""Zero-cost warm-up: a hybrid of a training-free screen and regularized evolution on validation
accuracy (Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021, section 5:
"zero-cost warmup" of aging evolution).

1. Screen: ``warmup`` distinct uniform samples are scored with the run's training-free metric M
   (with ``ensemble``: and those metrics too, ranked together: M is then the mean rank over the
   screen, the correlation study's rank ensemble; not in the paper). ``screen_all`` (not in the
   paper): when the space is a finite set (a pool, or a table's cells under a constraint) of at
   most ``screen_all`` members, the screen is every member instead (in a seeded random order), so
   a loose latency budget whose feasible set is a few thousand stored scores is screened whole.
2. Warm start: the ``top`` best of them by M (default ``population``) are validated, best first
   (so a budget that ends early has validated the most promising ones). With ``top`` above
   ``population`` (not in the paper), the population then keeps the ``population`` best-validated
   of them, ordered so the best is the youngest (the last aged out).
3. Evolution: regularized evolution (Real et al. 2019) on validation accuracy: a tournament of
   ``sample_size`` members drawn with replacement, the winner mutated, the child validated, the
   oldest member removed.

The answer is the best-validated architecture (before any validation: the best M). A revisit of
an architecture already validated is answered from the run's history at no cost (engine).

Under a wall budget with trained validations (no table; :meth:`ZeroCostWarmup.budget_options`),
options the user did not set are sized from it: the screen fills at most half the budget (at
most the default 500 cells), and the population at most a quarter of it in validations, so
evolution has the rest.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Mapping, Sequence

import numpy as np

from searchkit.errors import SearchkitError
from searchkit.spaces.base import SearchSpace
from searchkit.strategies.base import (Answer, Needs, Query, Score, Strategy, TimeBudget, Validate, Workload,
                                       distinct_samples, mean_ranks, strategy)
from searchkit.strategies.evolution import tournament_winner


@strategy("warmup")
class ZeroCostWarmup(Strategy):
    """Training-free screen of ``warmup`` samples (every member of a finite space of at most
    ``screen_all``), then REA on validation from the ``top`` (default ``population``) by score."""

    @classmethod
    def needs(cls, options: Mapping[str, Any]) -> Needs:
        return Needs(extra_metrics=tuple(options["ensemble"]), validation=True, training_free=True)

    def __init__(
        self, space: SearchSpace, rng: np.random.Generator, warmup: int = 500, population: int = 10,
        sample_size: int = 3, ensemble: Sequence[str] = (), screen_all: int = 0, top: int | None = None,
    ) -> None:
        top = population if top is None else top
        if warmup < 1 or population < 1 or not 1 <= sample_size <= population or not population <= top <= warmup \
                or screen_all < 0:
            raise SearchkitError(f"warmup needs 1 <= population <= top <= warmup, 1 <= sample_size <= population and "
                                 f"screen_all >= 0; got warmup={warmup}, population={population}, top={top}, "
                                 f"sample_size={sample_size}, screen_all={screen_all}")
        super().__init__(space, rng)
        self.population_size, self.sample_size, self.ensemble, self.top = population, sample_size, tuple(ensemble), top
        members = getattr(space, "members", None)
        if members is not None and len(members) <= screen_all:
            self.screen = [members[i] for i in rng.permutation(len(members))]
        else:
            self.screen = distinct_samples(space, rng, warmup)
        self.scores: dict[Any, Answer] = {}
        self.population: deque[tuple[Any, float]] = deque()
        self.validated = 0

    def workload(self) -> Workload:
        return Workload(scores=len(self.screen), scores_first=len(self.screen))

    def budget_options(self, budget: TimeBudget, given: frozenset[str]) -> dict[str, Any]:
        """The screen and the population from a wall budget when a training answers validations."""
        if budget.validation is None:
            return {}
        sized: dict[str, Any] = {}
        population = self.population_size
        if "population" not in given:
            population = sized["population"] = max(1, min(population, int(budget.seconds / 4 / budget.validation)))
        if "sample_size" not in given and self.sample_size > population:
            sized["sample_size"] = population
        if "warmup" not in given:
            sized["warmup"] = max(population, min(len(self.screen), int(budget.seconds / 2 / max(budget.score, 1e-9))))
        return sized

    def _seeds(self) -> list[Any]:
        """The screened architectures to start the population from, best M first (stable on ties)."""
        values = np.array([self.scores[arch].value for arch in self.screen], dtype=float)
        if self.ensemble:
            values = mean_ranks([values, *(np.array([self.scores[a].extras[spec] for a in self.screen], dtype=float)
                                           for spec in self.ensemble)])
        order = np.argsort(-values, kind="stable")
        return [self.screen[i] for i in order[: self.top]]

    def ask(self) -> list[Query]:
        unscored = [Score(arch) for arch in self.screen if arch not in self.scores]
        if unscored:
            return unscored
        seeds = self._seeds()
        if self.validated < len(seeds):
            return [Validate(seeds[self.validated])]
        parent = tournament_winner(self.population, self.sample_size, self.rng)
        return [Validate(self.space.mutate(parent, self.rng))]

    def tell(self, query: Query, answer: Answer) -> None:
        if isinstance(query, Score):
            self.scores[query.arch] = answer
            return
        self.validated += 1
        self.population.append((query.arch, float(answer.value)))
        if self.validated < min(self.top, len(self.screen)) or len(self.population) <= self.population_size:
            return  # the warm start fills the population first
        if self.validated == min(self.top, len(self.screen)):  # top > population: its best kept, the best youngest
            self.population = deque(sorted(self.population, key=lambda member: member[1])[-self.population_size:])
        else:
            self.population.popleft()
