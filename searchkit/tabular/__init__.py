"""Tabular benchmarks: ground-truth lookups and simulated training cost."""
from searchkit.tabular.hwnas import HWNASTable
from searchkit.tabular.nb201 import NB201Table

__all__ = ["HWNASTable", "NB201Table"]
