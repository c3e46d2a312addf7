"""Search strategies behind one query protocol (:mod:`searchkit.strategies.base`).

``get_strategy(name, space, rng, **options)`` builds one, ``strategy_needs(name, options)`` says
what it needs without building it; ``STRATEGIES.names()`` lists them. Each strategy module registers
its class with ``@strategy(name)``; the registry finds every module of this package on its first
lookup (:mod:`searchkit.registry`), so a new strategy is one new module.
"""
from searchkit.strategies.base import (STRATEGIES, Answer, Needs, OneShot, Query, Score, SearchContext, Strategy,
                                       Validate, get_strategy, strategy, strategy_needs)
from searchkit.strategies.evolution import RegularizedEvolution
from searchkit.strategies.hnas import HNAS
from searchkit.strategies.nasi import NASI
from searchkit.strategies.random import RandomSearch
from searchkit.strategies.warmup import ZeroCostWarmup

__all__ = ["STRATEGIES", "HNAS", "NASI", "Answer", "Needs", "OneShot", "Query", "RandomSearch", "RegularizedEvolution",
           "Score", "SearchContext", "Strategy", "Validate", "ZeroCostWarmup", "get_strategy", "strategy", "strategy_needs"]
