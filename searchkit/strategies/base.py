"""The ask/tell strategy protocol (docs/design.md, "Interfaces").

The engine asks for architectures, scores them with the training-free fitness and tells the
scores back; the engine, not the strategy, charges the budget. A strategy is seeded by the
``np.random.Generator`` it is given and is deterministic given the scores it is told, so a run
can be resumed by replaying the scores of its history into a fresh strategy.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from searchkit.spaces.base import SearchSpace


class Strategy(ABC):
    """Proposes architectures (``ask``) and learns from their scores (``tell``); higher is better."""

    name: str = ""

    def __init__(self, space: SearchSpace, rng: np.random.Generator) -> None:
        self.space = space
        self.rng = rng
        self.best_arch: Any = None
        self.best_score = -np.inf

    @abstractmethod
    def ask(self) -> list[Any]:
        """Architectures to score next (at least one)."""

    def tell(self, arch: Any, score: float) -> None:
        """Record the score of an architecture returned by :meth:`ask`."""
        if score > self.best_score:
            self.best_arch, self.best_score = arch, score

    def state_dict(self) -> dict:
        """Everything needed to continue: the generator state and the best so far (archs encoded)."""
        return {
            "rng": self.rng.bit_generator.state,
            "best": None if self.best_arch is None else self.space.encode(self.best_arch),
            "best_score": float(self.best_score),
        }

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.best_arch = None if state["best"] is None else self.space.decode(state["best"])
        self.best_score = state["best_score"]
