"""The dataset registry, :func:`get_dataset` and the seeded scoring batch."""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from searchkit.data.base import Batch, DatasetSplits
from searchkit.errors import SearchkitError
from searchkit.registry import Registry

DATASETS: Registry[DatasetSplits] = Registry("dataset", "searchkit.data")


def get_dataset(name: str, root: str | Path | None = None, **options) -> DatasetSplits:
    """Build dataset ``name`` from ``root`` (file datasets; None: the shared data default).

    ``options`` are the factory's keyword arguments (e.g. ``split_seed`` for ``digits``);
    an unknown option, or a ``root`` for a built-in dataset, is a SearchkitError.
    """
    factory: Callable[..., DatasetSplits] = DATASETS.get(name)
    params = inspect.signature(factory).parameters
    unknown = sorted(set(options) - set(params))
    if unknown:
        allowed = ", ".join(p for p in params if p != "root") or "none"
        raise SearchkitError(
            f"dataset {name!r} has no option {', '.join(unknown)}; its options are: {allowed}"
        )
    if "root" in params:
        options["root"] = root
    elif root is not None:
        raise SearchkitError(f"dataset {name!r} is built in and reads no files; unset data.root")
    return factory(**options)


def scoring_batch(splits: DatasetSplits, size: int, seed: int, split: str = "train") -> Batch:
    """``size`` distinct examples of ``split``, chosen by ``np.random.default_rng(seed)``.

    Returns x: (size, C, H, W) float32 normalised, y: (size,) int64. Only the chosen examples
    are decoded (through the split's ``batch(indices)`` where it has one).
    """
    if split not in ("train", "valid", "test"):
        raise SearchkitError(f"unknown split {split!r}; choose train, valid or test")
    dataset = getattr(splits, split)
    if dataset is None:
        raise SearchkitError(f"dataset {splits.name!r} has no {split} split")
    n = len(dataset)
    if not 1 <= size <= n:
        raise SearchkitError(
            f"scoring batch size {size} must be between 1 and the {n} examples of "
            f"{splits.name!r} {split}"
        )
    indices = np.random.default_rng(seed).choice(n, size=size, replace=False)
    if hasattr(dataset, "batch"):
        x, y = dataset.batch(indices)
    else:
        items = [dataset[int(i)] for i in indices]
        x = torch.stack([torch.as_tensor(item[0], dtype=torch.float32) for item in items])
        y = torch.tensor([int(item[1]) for item in items])
    return Batch(x, y.to(torch.int64), splits.num_classes)
