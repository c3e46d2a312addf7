"""A search space restricted to a pool of its architectures (e.g. those already scored): the
benchmark's space, so every strategy and seed is served by one set of stored scores."""
from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from searchkit.errors import SearchkitError
from searchkit.spaces.base import BaseSpace, Benchmark, SearchSpace, feature_matrix


class PoolSpace(BaseSpace):
    """``space`` restricted to ``members``.

    ``sample``: uniform over the members. ``mutate``: the space's mutation of the parent,
    projected onto the pool: the child itself if it is a member, else a uniform choice among the
    members nearest to it in Hamming distance over :meth:`~searchkit.spaces.base.SearchSpace.features`
    (the parent excluded). ``neighbours``: the members nearest to ``arch`` (itself excluded).
    Codec, networks, the benchmark and the hardware cost tables are the space's.
    """

    def __init__(self, space: SearchSpace, members: list[Any]) -> None:
        if len(members) < 2:
            raise SearchkitError(f"the benchmark pool needs at least 2 architectures, got {len(members)}")
        self.space, self.members, self.name = space, list(members), space.name
        self.default_dataset = space.default_dataset
        self._codes = feature_matrix(space, self.members)
        self._position = {arch: i for i, arch in enumerate(self.members)}

    def _nearest(self, arch: Any, exclude: Any = None) -> np.ndarray:
        distance = (self._codes != feature_matrix(self.space, [arch])[0]).sum(1)
        if exclude in self._position:
            distance[self._position[exclude]] = self._codes.shape[1] + 1
        return np.flatnonzero(distance == distance.min())

    def sample(self, rng: np.random.Generator) -> Any:
        return self.members[int(rng.integers(len(self.members)))]

    def mutate(self, arch: Any, rng: np.random.Generator) -> Any:
        child = self.space.mutate(arch, rng)
        if child in self._position:
            return child
        nearest = self._nearest(child, exclude=arch)
        return self.members[int(nearest[rng.integers(len(nearest))])]

    def neighbours(self, arch: Any) -> list[Any]:
        return [self.members[i] for i in self._nearest(arch, exclude=arch)]

    def features(self, arch: Any) -> tuple[int, ...]:
        return self.space.features(arch)

    def encode(self, arch: Any) -> str:
        return self.space.encode(arch)

    def decode(self, text: str) -> Any:
        return self.space.decode(text)

    def build(self, arch: Any, num_classes: int, **kwargs: Any) -> nn.Module:
        return self.space.build(arch, num_classes, **kwargs)

    def benchmark(self, path: Any = None) -> Benchmark | None:
        return self.space.benchmark(path)

    def cost_model(self, device: str, quantity: str = "latency", dataset: str | None = None, table: Any = None,
                   **measure: Any) -> Any:
        """The space's cost model (its networks are the pool's)."""
        return self.space.cost_model(device, quantity, dataset, table, **measure)
