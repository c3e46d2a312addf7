"""The search-space protocol every space implements (see docs/design.md, "Interfaces")."""
from __future__ import annotations

from typing import Hashable, Protocol, TypeVar, runtime_checkable

import numpy as np
from torch import nn

Arch = TypeVar("Arch", bound=Hashable)


@runtime_checkable
class SearchSpace(Protocol[Arch]):
    """Samples, mutates, encodes and builds architectures of one search space.

    Architectures are immutable and hashable, so strategies can keep them in sets and dicts.
    ``encode``/``decode`` round-trip exactly; ``decode`` is strict and raises
    :class:`searchkit.errors.SearchkitError` with a message naming the problem.
    """

    name: str
    #: the dataset a command uses when none is named
    default_dataset: str

    def sample(self, rng: np.random.Generator) -> Arch: ...

    def mutate(self, arch: Arch, rng: np.random.Generator) -> Arch: ...

    def encode(self, arch: Arch) -> str: ...

    def decode(self, text: str) -> Arch: ...

    def build(self, arch: Arch, num_classes: int, **kwargs) -> nn.Module: ...
