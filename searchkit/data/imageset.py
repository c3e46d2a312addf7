"""ImageSet: one split of labelled images, held in memory or decoded on demand."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset


class ImageSet(Dataset):
    """N labelled images yielding ``(x (C,H,W) float32 normalised, y int)``.

    Pixels either live in memory, ``pixels: (N,C,H,W)`` uint8 in 0..255 (scaled by 1/255) or
    float (taken as already scaled, e.g. to [0,1]), or are decoded on demand by
    ``decode(i) -> (C,H,W) uint8``; then only the requested images are decoded, and
    :meth:`tensors` decodes every image once and keeps them (as uint8) for later calls.
    ``mean``/``std`` (C,) are the per-channel statistics in the scaled domain (kept as (C,1,1)
    tensors); every output is ``(scaled - mean) / std``. ``labels: (N,)`` int64 is always in memory.
    """

    def __init__(
        self,
        labels: np.ndarray,
        mean: Sequence[float],
        std: Sequence[float],
        *,
        pixels: torch.Tensor | None = None,
        decode: Callable[[int], np.ndarray] | None = None,
    ) -> None:
        if (pixels is None) == (decode is None):
            raise ValueError("ImageSet needs exactly one of pixels or decode")
        self.labels = np.asarray(labels, dtype=np.int64)
        if pixels is not None and len(pixels) != len(self.labels):
            raise ValueError(f"{len(pixels)} images but {len(self.labels)} labels")
        self._pixels = pixels
        self._decode = decode
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x, y = self.batch([i])
        return x[0], int(y[0])

    def batch(self, indices: Sequence[int] | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``indices`` as ``x: (m,C,H,W)`` float32 normalised, ``y: (m,)`` int64.

        Decodes only these images when the pixels are not in memory.
        """
        idx = np.asarray(indices, dtype=np.int64)
        n = len(self)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"index out of range for a split of {n} images")
        if self._pixels is not None:
            raw = self._pixels[torch.from_numpy(idx)]
        else:
            raw = torch.from_numpy(np.stack([self._decode(int(i)) for i in idx]))
        return self._normalise(raw), torch.from_numpy(self.labels[idx])

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole split: ``X: (N,C,H,W)`` float32 normalised, ``Y: (N,)`` int64.

        For trainers that batch by slicing (no per-item Python overhead). A lazily decoded split
        decodes every image on the first call (CIFAR-10 train, 50k JPEGs: a few seconds) and
        keeps the uint8 pixels; X itself is a fresh float32 tensor (4 bytes per value).
        """
        if self._pixels is None:
            self._pixels = torch.from_numpy(np.stack([self._decode(i) for i in range(len(self))]))
            self._decode = None
        return self._normalise(self._pixels), torch.from_numpy(self.labels.copy())

    def subset(self, indices: Sequence[int] | np.ndarray) -> "ImageSet":
        """The images ``indices`` (in that order) as a new split sharing the statistics."""
        idx = np.asarray(indices, dtype=np.int64)
        mean, std = self.mean.flatten().tolist(), self.std.flatten().tolist()
        if self._pixels is not None:
            return ImageSet(self.labels[idx], mean, std, pixels=self._pixels[torch.from_numpy(idx)])
        return ImageSet(self.labels[idx], mean, std, decode=_Reindexed(self._decode, idx))

    def _normalise(self, raw: torch.Tensor) -> torch.Tensor:
        x = raw.to(torch.float32, copy=True)
        if raw.dtype == torch.uint8:
            x.mul_(1.0 / 255.0)
        return x.sub_(self.mean).div_(self.std)


class _Reindexed:
    """``decode`` seen through an index map (a picklable closure, for DataLoader workers)."""

    def __init__(self, decode: Callable[[int], np.ndarray], indices: np.ndarray) -> None:
        self.decode, self.indices = decode, indices

    def __call__(self, i: int) -> np.ndarray:
        return self.decode(int(self.indices[i]))


def channel_stats(pixels: torch.Tensor, rows: np.ndarray | None = None,
                  chunk: int = 4096) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of ``pixels: (N,C,H,W)`` (uint8 scaled by 1/255, or float), over
    the images ``rows`` (None: all).

    Memory is bounded by ``chunk`` images at a time, whatever N. uint8 pixels are summed, and
    their squares, as integers (exact), float pixels in float64. A constant channel gets std 1 so
    normalising never divides by zero.
    """
    rows = np.arange(len(pixels)) if rows is None else np.asarray(rows)
    _, channels, height, width = pixels.shape
    per_image, exact = height * width, pixels.dtype == torch.uint8
    total = np.zeros(channels, np.int64 if exact else np.float64)
    squares = total.copy()
    for start in range(0, len(rows), chunk):
        block = pixels[torch.from_numpy(rows[start : start + chunk])].numpy().reshape(-1, channels, per_image)
        if exact:
            total += block.sum(axis=(0, 2), dtype=np.int64)
            wide = block.astype(np.uint16)  # 255 ** 2 fits
            squares += (wide * wide).sum(axis=(0, 2), dtype=np.int64)
        else:
            block = block.astype(np.float64)
            total += block.sum(axis=(0, 2))
            squares += (block * block).sum(axis=(0, 2))
    scale = 255.0 if exact else 1.0
    n = len(rows) * per_image
    mean = total / n / scale
    var = squares / n / scale**2 - mean**2
    std = np.sqrt(np.clip(var, 0, None))
    std = np.where(std > 1e-12, std, 1.0)
    return mean.tolist(), std.tolist()
