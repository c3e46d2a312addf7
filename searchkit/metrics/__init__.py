"""Training-free metrics: one registry, every score "higher is better".

``get_metric("kcc", eps=0.1)`` or ``parse_metric("kcc:eps=0.1")`` builds a metric;
``METRICS.names()`` lists them. Each metric module registers its classes with ``@metric(name)``
(:mod:`searchkit.metrics.base`); the registry finds every module of this package on its first
lookup (:mod:`searchkit.registry`), so a new metric is one new module.
"""
from searchkit.metrics.base import (METRICS, DegenerateNetworkWarning, Metric, SharedWork, get_metric, metric,
                                    parse_metric, score_metrics)
from searchkit.metrics.ntk import empirical_ntk

__all__ = ["METRICS", "Metric", "DegenerateNetworkWarning", "SharedWork", "get_metric", "metric", "parse_metric",
           "score_metrics", "empirical_ntk"]
