"""Deprecated: renamed :mod:`searchkit.correlation_report` (the report of ``searchkit correlate``).

This alias keeps ``from searchkit.report import ...`` working for one release with a
DeprecationWarning; it will be removed in the next.
"""
import warnings

from searchkit.correlation_report import *  # noqa: F401,F403
from searchkit.correlation_report import (  # noqa: F401  (private names tests and scripts imported)
    _Ranker, _weighted_pearson)

warnings.warn("searchkit.report is renamed searchkit.correlation_report; import from there "
              "(the old name goes in the next release)", DeprecationWarning, stacklevel=2)

from searchkit.tabular.nb201 import NB201Table as _NB201Table

#: NAS-Bench-201's (dataset, split) columns, which the report used to read; the report now reads
#: ``table.targets`` of whatever ranking table it is given.
TARGETS = [(d, s) for d, s, _ in _NB201Table.targets]
