"""Tabular benchmarks: ground-truth lookups and simulated training cost."""
from searchkit.tabular.nb201 import NB201Table

__all__ = ["NB201Table"]
