"""Training-free metrics: one registry, every score "higher is better".

``get_metric("kcc", eps=0.1)`` builds a metric; ``METRICS.names()`` lists them. Each metric
module registers itself with ``@METRICS.register(name)``; importing it here makes it available.
"""
from searchkit.metrics import cost, kcc, naswot, ntk_family, zero_cost  # noqa: F401  (registers their metrics)
from searchkit.metrics.base import METRICS, DegenerateNetworkWarning, Metric, get_metric, guarded
from searchkit.metrics.ntk import empirical_ntk

__all__ = ["METRICS", "Metric", "DegenerateNetworkWarning", "get_metric", "guarded", "empirical_ntk"]
