"""Datasets that need no files: scikit-learn's bundled 8x8 digits and seeded synthetic tensors."""
from __future__ import annotations

import numpy as np
import torch

from searchkit.data.base import DatasetSplits
from searchkit.data.catalog import DATASETS
from searchkit.data.imageset import ImageSet, channel_stats
from searchkit.errors import SearchkitError


@DATASETS.register("digits")
def digits(split_seed: int = 0) -> DatasetSplits:
    """scikit-learn's bundled handwritten digits: 1,797 images (1, 8, 8), 10 classes.

    Pixels 0..16 are scaled to [0, 1], then normalised with the training split's mean/std.
    A stratified split seeded by ``split_seed`` gives train/valid/test = 60/20/20 %
    (1077/360/360 images). No augmentation (crop+flip makes no sense at 8x8).
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    pixels = torch.from_numpy((bunch.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8))
    labels = bunch.target.astype(np.int64)
    rest, test = train_test_split(
        np.arange(len(labels)), test_size=0.2, stratify=labels, random_state=split_seed
    )
    train, valid = train_test_split(
        rest, test_size=0.25, stratify=labels[rest], random_state=split_seed
    )
    train, valid, test = np.sort(train), np.sort(valid), np.sort(test)
    mean, std = channel_stats(pixels[torch.from_numpy(train)])

    def split(idx: np.ndarray) -> ImageSet:
        return ImageSet(labels[idx], mean, std, pixels=pixels[torch.from_numpy(idx)])

    return DatasetSplits(
        name="digits",
        num_classes=10,
        input_shape=(1, 8, 8),
        train=split(train),
        valid=split(valid),
        test=split(test),
        augment=False,
        info={"mean": tuple(mean), "std": tuple(std), "source": "sklearn.datasets.load_digits"},
    )


@DATASETS.register("synthetic")
def synthetic(
    num_classes: int = 10,
    shape: tuple[int, int, int] | list[int] = (3, 32, 32),
    n_train: int = 256,
    n_valid: int = 64,
    n_test: int = 64,
    seed: int = 0,
) -> DatasetSplits:
    """Seeded Gaussian images for tests: x = centre[y] + noise, both per-pixel Gaussian.

    ``centre[y]`` ~ N(0, 0.5^2) per class and pixel, noise ~ N(0, 1); labels are balanced
    (``i % num_classes``, shuffled), so the classes are learnable. ``n_valid=0`` gives no
    valid split. Normalised with the training split's per-channel mean/std.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise SearchkitError(f"synthetic shape must be (C, H, W) with positive sizes, got {shape}")
    if num_classes < 1 or n_train < 1 or n_test < 1 or n_valid < 0:
        raise SearchkitError(
            "synthetic needs num_classes, n_train and n_test >= 1 and n_valid >= 0, got "
            f"{num_classes}, {n_train}, {n_test}, {n_valid}"
        )
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 0.5, size=(num_classes, *shape))

    def make(n: int) -> tuple[torch.Tensor, np.ndarray]:
        y = rng.permutation(np.arange(n) % num_classes)
        x = centres[y] + rng.normal(0.0, 1.0, size=(n, *shape))
        return torch.from_numpy(x.astype(np.float32)), y

    sizes = {"train": n_train, "valid": n_valid, "test": n_test}
    parts = {name: make(n) for name, n in sizes.items()}
    mean, std = channel_stats(parts["train"][0])
    sets = {name: ImageSet(y, mean, std, pixels=x) for name, (x, y) in parts.items()}
    return DatasetSplits(
        name="synthetic",
        num_classes=num_classes,
        input_shape=shape,
        train=sets["train"],
        valid=sets["valid"] if n_valid else None,
        test=sets["test"],
        augment=False,
        info={"mean": tuple(mean), "std": tuple(std), "seed": seed},
    )
