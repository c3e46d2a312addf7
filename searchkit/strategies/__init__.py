"""Search strategies behind one query protocol (:mod:`searchkit.strategies.base`).

``get_strategy(name, space, rng, **options)`` builds one; ``STRATEGIES.names()`` lists them. Each
strategy module registers its class with ``@strategy(name)``; importing it here makes it available.
"""
from importlib import import_module

for _module in ("random", "evolution", "hnas", "nasi", "warmup", "local", "nsga2", "robot"):  # each registers its strategy
    import_module(f"searchkit.strategies.{_module}")
from searchkit.strategies.base import (STRATEGIES, Answer, Needs, OneShot, Query, Score, SearchContext, Strategy,
                                       Validate, get_strategy, strategy)
from searchkit.strategies.evolution import RegularizedEvolution
from searchkit.strategies.hnas import HNAS
from searchkit.strategies.nasi import NASI
from searchkit.strategies.random import RandomSearch
from searchkit.strategies.warmup import ZeroCostWarmup

__all__ = ["STRATEGIES", "HNAS", "NASI", "Answer", "Needs", "OneShot", "Query", "RandomSearch", "RegularizedEvolution",
           "Score", "SearchContext", "Strategy", "Validate", "ZeroCostWarmup", "get_strategy", "strategy"]
