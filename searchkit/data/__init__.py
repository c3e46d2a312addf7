"""Datasets: a registry of factories, each returning :class:`DatasetSplits`, and the seeded
scoring batch that training-free metrics score networks on.

Each dataset module registers its factories with ``@DATASETS.register(name)``; the registry finds
every module of this package on its first lookup (:mod:`searchkit.registry`). Registered: ``digits``
(embedded default), ``cifar10``, ``cifar100``, ``cifar10-valid``
(NAS-Bench-201 protocol), ``imagefolder`` (a user's own images), ``synthetic`` (tests).
Every split built here is an :class:`ImageSet`: ``ds[i]`` is ``(x (C,H,W) float32
normalised, y int)``, ``ds.batch(indices)`` decodes only those examples and
``ds.tensors()`` returns the whole split as ``(X (N,C,H,W), Y (N,))`` for fast training.
"""
from searchkit.data.base import Batch, DatasetSplits
from searchkit.data.catalog import DATASETS, get_dataset, scoring_batch
from searchkit.data.imageset import ImageSet

__all__ = ["DATASETS", "Batch", "DatasetSplits", "ImageSet", "get_dataset", "scoring_batch"]
