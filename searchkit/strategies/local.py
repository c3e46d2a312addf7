"""Local search (White, Nolen, Ravichandran and Savani, "Local Search is State of the Art for Neural
Architecture Search Benchmarks", 2021, Algorithm 1): best-improvement hill climbing over the
space's neighbourhood, restarted from a fresh random architecture when stuck.

From the current architecture, every neighbour (:meth:`~searchkit.spaces.base.SearchSpace.neighbours`:
all architectures one mutation away) is queried; if the best of them is strictly better, it
becomes the current one, otherwise the current one is a local optimum and the search restarts
from a uniformly sampled architecture it has not seen. An architecture is queried once: its
value is remembered, so a neighbourhood that overlaps an earlier one costs only its new members.
The queries are training-free scores, or validation accuracies when the run's metric is
``validation`` (the paper's setting), so the same strategy is score-guided or validation-guided.
The answer is the best queried architecture (the driver's incumbent).
"""
from __future__ import annotations

from typing import Any

from searchkit.strategies.base import Answer, Query, Score, Strategy, distinct_samples, strategy


@strategy("local")
class LocalSearch(Strategy):
    """Best-improvement hill climbing with random restarts (no options)."""

    def __init__(self, space: Any, rng: Any) -> None:
        super().__init__(space, rng)
        self.values: dict[Any, float] = {}
        self.current: Any = None
        self.restarts = 0

    def ask(self) -> list[Query]:
        if self.current is None:
            fresh = distinct_samples(self.space, self.rng, 1, exclude=self.values.keys())
            if not fresh:
                return []  # every architecture the sampler finds has been seen
            self.current = fresh[0]
            return [Score(self.current)]
        unknown = [Score(arch) for arch in self.space.neighbours(self.current) if arch not in self.values]
        if unknown:
            return unknown
        self._step()
        return self.ask()

    def tell(self, query: Query, answer: Answer) -> None:
        self.values[query.arch] = answer.value

    def _step(self) -> None:
        """Move to the best neighbour if it improves on the current architecture, else restart."""
        best = max(self.space.neighbours(self.current), key=lambda arch: self.values[arch], default=None)
        if best is not None and self.values[best] > self.values[self.current]:
            self.current = best
        else:
            self.current, self.restarts = None, self.restarts + 1
