"""Training-free metrics: one registry, every score "higher is better".

``get_metric("kcc", eps=0.1)`` or ``parse_metric("kcc:eps=0.1")`` builds a metric;
``METRICS.names()`` lists them. Each metric module registers its classes with ``@metric(name)``
(:mod:`searchkit.metrics.base`); importing the module here makes them available.
"""
from importlib import import_module

for _module in ("cost", "kcc", "naswot", "ntk_family", "zero_cost"):  # each registers its metrics
    import_module(f"searchkit.metrics.{_module}")
from searchkit.metrics.base import METRICS, DegenerateNetworkWarning, Metric, get_metric, metric, parse_metric
from searchkit.metrics.ntk import empirical_ntk

__all__ = ["METRICS", "Metric", "DegenerateNetworkWarning", "get_metric", "metric", "parse_metric", "empirical_ntk"]
