"""Search strategies behind one ask/tell interface; ``get_strategy(name, space, rng, **options)``."""
from __future__ import annotations

import numpy as np

from searchkit.errors import SearchkitError
from searchkit.registry import Registry
from searchkit.spaces.base import SearchSpace
from searchkit.strategies.base import OneShotStrategy, SearchContext, Strategy, Validate
from searchkit.strategies.evolution import RegularizedEvolution
from searchkit.strategies.hnas import HNAS
from searchkit.strategies.nasi import NASI
from searchkit.strategies.random import RandomSearch
from searchkit.strategies.warmup import ZeroCostWarmup

STRATEGIES: Registry[Strategy] = Registry("strategy")
STRATEGIES.register("random")(RandomSearch)
STRATEGIES.register("evolution")(RegularizedEvolution)
STRATEGIES.register("hnas")(HNAS)
STRATEGIES.register("nasi")(NASI)
STRATEGIES.register("warmup")(ZeroCostWarmup)


def get_strategy(name: str, space: SearchSpace, rng: np.random.Generator, **options) -> Strategy:
    """The registered strategy ``name`` over ``space``, seeded by ``rng``, configured by ``options``."""
    factory = STRATEGIES.get(name)
    try:
        return factory(space, rng, **options)
    except TypeError as err:
        raise SearchkitError(f"bad options for strategy {name!r}: {err}") from None


__all__ = ["STRATEGIES", "HNAS", "NASI", "OneShotStrategy", "RandomSearch", "RegularizedEvolution", "SearchContext",
           "Strategy", "Validate", "ZeroCostWarmup", "get_strategy"]
