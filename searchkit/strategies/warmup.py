"""Zero-cost warm-up: a hybrid of a training-free screen and regularized evolution on validation
accuracy (Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021, section 5:
"zero-cost warmup" of aging evolution).

1. Screen: ``warmup`` distinct uniform samples are scored with the run's training-free metric M.
2. Warm start: the ``population`` best of them by M are validated, best first (so a budget that
   ends early has validated the most promising ones).
3. Evolution: regularized evolution (Real et al. 2019) on validation accuracy: a tournament of
   ``sample_size`` members drawn with replacement, the winner mutated, the child validated, the
   oldest member removed.

The answer is the best-validated architecture (before any validation: the best M). A revisit of
an architecture already validated is answered from the run's history at no cost (engine).
"""
from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from searchkit.errors import SearchkitError
from searchkit.spaces.base import SearchSpace
from searchkit.strategies.base import Strategy, Validate, distinct_samples
from searchkit.strategies.evolution import tournament_winner


class ZeroCostWarmup(Strategy):
    """Training-free screen of ``warmup`` samples, then REA on validation from the top ``population``."""

    name = "warmup"
    validates = True

    def __init__(
        self, space: SearchSpace, rng: np.random.Generator, warmup: int = 500, population: int = 10,
        sample_size: int = 3,
    ) -> None:
        if warmup < 1 or population < 1 or not 1 <= sample_size <= population or population > warmup:
            raise SearchkitError(f"warmup needs 1 <= population <= warmup and 1 <= sample_size <= population; "
                                 f"got warmup={warmup}, population={population}, sample_size={sample_size}")
        super().__init__(space, rng)
        self.population_size, self.sample_size = population, sample_size
        self.screen = distinct_samples(space, rng, warmup)
        self.scores: dict[Any, float] = {}
        self.population: deque[tuple[Any, float]] = deque()
        self.validated = 0

    def _seeds(self) -> list[Any]:
        """The screened architectures to start the population from, best M first."""
        ranked = sorted(self.screen, key=lambda arch: -self.scores[arch])
        return ranked[: self.population_size]

    def ask(self) -> list[Any]:
        unscored = [arch for arch in self.screen if arch not in self.scores]
        if unscored:
            return unscored
        seeds = self._seeds()
        if self.validated < len(seeds):
            return [Validate(seeds[self.validated])]
        parent = tournament_winner(self.population, self.sample_size, self.rng)
        return [Validate(self.space.mutate(parent, self.rng))]

    def tell(self, arch: Any, score: float) -> None:
        self.scores[arch] = score
        if self.selected_by == "score":
            super().tell(arch, score)

    def tell_validation(self, arch: Any, accuracy: float) -> None:
        self.validated += 1
        self.population.append((arch, float(accuracy)))
        if len(self.population) > self.population_size:
            self.population.popleft()
        if self.selected_by == "score" or accuracy > self.best_score:
            self.best_arch, self.best_score, self.selected_by = arch, float(accuracy), "validation"

    def state_dict(self) -> dict:
        encode = self.space.encode
        state = super().state_dict()
        state.update(screen=[encode(a) for a in self.screen], scores={encode(a): v for a, v in self.scores.items()},
                     population=[(encode(a), v) for a, v in self.population], validated=self.validated,
                     selected_by=self.selected_by)
        return state

    def load_state_dict(self, state: dict) -> None:
        decode = self.space.decode
        super().load_state_dict(state)
        self.screen = [decode(s) for s in state["screen"]]
        self.scores = {decode(s): v for s, v in state["scores"].items()}
        self.population = deque((decode(s), v) for s, v in state["population"])
        self.validated, self.selected_by = state["validated"], state["selected_by"]
