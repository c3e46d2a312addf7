"""Tabular benchmarks (ground-truth lookups and simulated training cost) and ranking tables."""
from searchkit.tabular.darts import DartsTable
from searchkit.tabular.hwnas import HWNASTable
from searchkit.tabular.nb201 import NB201Table

__all__ = ["DartsTable", "HWNASTable", "NB201Table"]
