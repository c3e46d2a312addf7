"""Device choice, seeded network construction and memory release, shared by scoring and evaluation."""
from __future__ import annotations

import functools
import os
import platform
from importlib import metadata
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


#: The packages whose versions a study's figures can depend on (botorch and gpytorch: the BO strategies' paths).
STUDY_PACKAGES = ("torch", "numpy", "scipy", "botorch", "gpytorch")


def software_versions() -> str:
    """``python 3.11.7, torch 2.13.0, ...`` for :data:`STUDY_PACKAGES` (``-`` for one not installed)."""
    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "-"

    return ", ".join([f"python {platform.python_version()}", *(f"{name} {version(name)}" for name in STUDY_PACKAGES)])


def build_network(space: SearchSpace, arch: Any, splits: DatasetSplits, seed: int, build: dict) -> torch.nn.Module:
    """The architecture's network for ``splits``, initialised from ``seed`` (the global RNG is untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            return space.build(arch, splits.num_classes, in_channels=splits.input_shape[0], **build)
        except TypeError as err:
            raise SearchkitError(f"bad space.build options {build}: {err}") from None


#: Resident bytes above which the scoring loop trims the heap after an architecture (:func:`release_memory`).
SCORING_TRIM_ABOVE = 2 << 30


def release_memory(above: int = 0) -> None:
    """Return freed heap memory to the operating system (glibc's ``malloc_trim``; a no-op elsewhere)
    when the process holds more than ``above`` bytes (0: always).

    Scoring allocates and frees many large tensors per architecture; glibc keeps freed chunks in
    its heap (its dynamic mmap threshold grows after large frees), so a process scoring thousands
    of architectures grew by ~60-130 MB per architecture until the kernel killed it (a 12 GB worker
    after ~300 NB201 cells). Trimming keeps it bounded. Trimming after every architecture costs the
    next one its pages back (NB201 grad_norm, snip, grasp and fisher: 200,000 page faults and 15 % of
    the time of two workers per cell), so the scoring loop trims only above :data:`SCORING_TRIM_ABOVE`.
    """
    trim = _malloc_trim()
    if trim is not None and (above <= 0 or resident_bytes() > above):
        trim(0)


def resident_bytes() -> int:
    """This process's resident memory (Linux ``/proc/self/statm``; 0 where there is none)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


@functools.cache
def _malloc_trim():
    """glibc's ``malloc_trim``, or None where there is none."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim") if name else None
    except (OSError, AttributeError):
        return None
