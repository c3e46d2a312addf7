"""Random search: uniform samples from the space (Li & Talwalkar 2019; a strong NAS baseline)."""
from __future__ import annotations

from searchkit.strategies.base import Answer, Query, Score, Strategy, strategy


@strategy("random")
class RandomSearch(Strategy):
    """Asks for one uniformly sampled architecture at a time; the answer is the best scored."""

    def ask(self) -> list[Query]:
        return [Score(self.space.sample(self.rng))]

    def tell(self, query: Query, answer: Answer) -> None:
        """Nothing to learn: every sample is independent."""
