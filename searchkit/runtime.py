"""Device choice and seeded network construction, shared by scoring and evaluation."""
from __future__ import annotations

from typing import Any

import torch

from searchkit.data.base import DatasetSplits
from searchkit.errors import SearchkitError
from searchkit.spaces.base import SearchSpace


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; otherwise the named device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise SearchkitError(f"unknown device {name!r}; use auto, cpu or cuda[:N]") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SearchkitError(f"device {name!r} asked for but CUDA is not available; use device=cpu or auto")
    return device


def build_network(space: SearchSpace, arch: Any, splits: DatasetSplits, seed: int, build: dict) -> torch.nn.Module:
    """The architecture's network for ``splits``, initialised from ``seed`` (the global RNG is untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            return space.build(arch, splits.num_classes, in_channels=splits.input_shape[0], **build)
        except TypeError as err:
            raise SearchkitError(f"bad space.build options {build}: {err}") from None
