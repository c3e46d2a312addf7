"""Regularized evolution (Real et al. 2019, "Regularized Evolution for Image Classifier
Architecture Search", Algorithm 1): tournament selection with aging.

The first ``population`` architectures are uniform samples. Then each cycle draws
``sample_size`` members of the population uniformly (with replacement, as in the paper),
mutates the best of them (one edge in NB201) into a child, appends the child and removes
the OLDEST member (aging, not the worst). The answer is the best architecture in the history.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Sequence

import numpy as np

from searchkit.errors import SearchkitError
from searchkit.spaces.base import SearchSpace
from searchkit.strategies.base import Answer, Query, Score, Strategy, strategy


def tournament_winner(population: Sequence[tuple[Any, float]], sample_size: int, rng: np.random.Generator) -> Any:
    """The best of ``sample_size`` members of (arch, fitness) ``population`` drawn with replacement."""
    picks = rng.integers(len(population), size=sample_size)
    return max((population[i] for i in picks), key=lambda member: member[1])[0]


@strategy("evolution")
class RegularizedEvolution(Strategy):
    """Aging evolution with population P and tournament sample size S (S <= P)."""

    def __init__(self, space: SearchSpace, rng: np.random.Generator, population: int = 20, sample_size: int = 5) -> None:
        if population < 2 or not 1 <= sample_size <= population:
            raise SearchkitError(
                f"evolution needs population >= 2 and 1 <= sample_size <= population, got {population} and {sample_size}"
            )
        super().__init__(space, rng)
        self.population_size = population
        self.sample_size = sample_size
        self.population: deque[tuple[Any, float]] = deque()

    def ask(self) -> list[Query]:
        if len(self.population) < self.population_size:
            return [Score(self.space.sample(self.rng))]
        parent = tournament_winner(self.population, self.sample_size, self.rng)
        return [Score(self.space.mutate(parent, self.rng))]

    def tell(self, query: Query, answer: Answer) -> None:
        self.population.append((answer.arch, answer.value))
        if len(self.population) > self.population_size:
            self.population.popleft()
