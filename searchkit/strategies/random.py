"""Random search: uniform samples from the space (Li & Talwalkar 2019; a strong NAS baseline)."""
from __future__ import annotations

from typing import Any

from searchkit.strategies.base import Strategy


class RandomSearch(Strategy):
    """Asks for one uniformly sampled architecture at a time; the answer is the best scored."""

    name = "random"

    def ask(self) -> list[Any]:
        return [self.space.sample(self.rng)]
