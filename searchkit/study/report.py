"""Deprecated: renamed :mod:`searchkit.study.benchmark_report` (the report of ``searchkit
benchmark``); its shared helpers are public in :mod:`searchkit.study.anytime`.

This alias keeps ``from searchkit.study.report import ...`` working for one release with a
DeprecationWarning; it will be removed in the next.
"""
import warnings

from searchkit.study.anytime import *  # noqa: F401,F403
from searchkit.study.anytime import _value_at  # noqa: F401
from searchkit.study.anytime import draw_runs as _draw, mean_std as _mean_std  # noqa: F401  (the old private names)
from searchkit.study.benchmark_report import *  # noqa: F401,F403

warnings.warn("searchkit.study.report is renamed searchkit.study.benchmark_report (shared helpers: "
              "searchkit.study.anytime); import from there (the old name goes in the next release)",
              DeprecationWarning, stacklevel=2)
