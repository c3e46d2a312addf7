"""The search-space protocol, and the capabilities a space may offer (docs/architecture.md).

Every space samples, mutates, lists neighbours, encodes/decodes and builds architectures.
Beyond that a space may offer:

* a tabular **benchmark** (:class:`Benchmark`): ground-truth accuracies and recorded training
  times of all its architectures (NAS-Bench-201's table). The engine's validation oracle, table
  evaluation and ``searchkit benchmark`` use whatever space offers one; nothing compares space names.
* a **ranking table** (:class:`RankTable`, :meth:`BaseSpace.rank_table`): trained accuracies of some
  of its architectures, enough to rank metrics by: what ``searchkit correlate`` scores and
  correlates with. A benchmark is one; DARTS offers 1,000 trained cells
  (:class:`searchkit.tabular.darts.DartsTable`), which no search validates with.
* a **supernet** (one-shot network over all its architectures, for NASI): :meth:`BaseSpace.supernet`
  returns its class (:class:`searchkit.spaces.supernet.SuperNet`: size options, ops, ``derive``).
* a **hardware cost model** (:meth:`BaseSpace.cost_model`): the latency or energy of its
  architectures on a named device. Every space offers ``cpu`` latency measured on this machine;
  a space with a cost table adds its devices (NB201: HW-NAS-Bench's six).

:class:`SearchSpace` is the protocol every space meets; :class:`BaseSpace` (formerly ``Space``,
an alias kept for one release) is the base class with the defaults of the optional capabilities
(no benchmark, no supernet, measured CPU latency); spaces derive from it. :func:`feature_matrix`
is the one op-coding of a space's architectures (its ``features``), for distances and additive
cost fits.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Hashable, Protocol, Sequence, TypeVar, runtime_checkable

import numpy as np
from torch import nn

from searchkit.errors import SearchkitError
from searchkit.registry import Registry
from searchkit.hardware.cost_models import MEASURED_DEVICE, CostModel, MeasuredLatency

if TYPE_CHECKING:
    from searchkit.spaces.supernet import SuperNet

Arch = TypeVar("Arch", bound=Hashable)


@runtime_checkable
class RankTable(Protocol):
    """Trained accuracies (%) of some architectures of a space, by index: what ``searchkit correlate``
    ranks metrics against.

    ``name``: the table's name; ``source``: where it was read from; ``targets``: the accuracy
    columns (dataset, split, epochs) a correlation report reads, in order; ``protocol``: a sentence
    saying what those accuracies are (how they were trained). ``arch_str(i)``: the architecture
    of index ``i`` in the space's text form; ``column``: (n,) accuracies of one target.
    """

    name: str
    source: str
    targets: tuple[tuple[str, str, int], ...]
    protocol: str

    def __len__(self) -> int: ...

    def arch_str(self, index: int) -> str: ...

    def column(self, dataset: str, split: str = "test", epochs: int = 200) -> np.ndarray: ...


@runtime_checkable
class Benchmark(RankTable, Protocol):
    """Tabular ground truth over a whole space (a :class:`RankTable` of every architecture):
    architectures by index, accuracies (%) per dataset, split (test, valid) and epochs, the
    recorded seconds of one training run, and parameter counts (millions).

    ``name``: the benchmark's name; ``source``: where it was read from. ``dataset_for(name)``: the
    table's dataset for one of our dataset names (``cifar10-valid`` ->
    ``cifar10``), or None when the table has no results for it.
    """

    name: str
    source: str

    def __len__(self) -> int: ...

    def dataset_for(self, name: str) -> str | None: ...

    def index_of(self, arch_str: str) -> int: ...

    def arch_str(self, index: int) -> str: ...

    def accuracy(self, index: int, dataset: str, split: str = "test", epochs: int = 200) -> float: ...

    def train_time(self, index: int, dataset: str, epochs: int = 200) -> float: ...

    def params(self, index: int, dataset: str) -> float: ...


@runtime_checkable
class SearchSpace(Protocol[Arch]):
    """Samples, mutates, encodes and builds architectures of one search space.

    Architectures are immutable and hashable, so strategies can keep them in sets and dicts.
    ``encode``/``decode`` round-trip exactly; ``decode`` is strict and raises
    :class:`searchkit.errors.SearchkitError` with a message naming the problem. ``neighbours``
    lists every architecture one :meth:`mutate` step away (local search); ``features`` gives
    categorical coordinates (edge Hamming distance = the number of differing coordinates).
    """

    name: str
    #: the dataset a command uses when none is named
    default_dataset: str

    def sample(self, rng: np.random.Generator) -> Arch: ...

    def mutate(self, arch: Arch, rng: np.random.Generator) -> Arch: ...

    def neighbours(self, arch: Arch) -> list[Arch]: ...

    def features(self, arch: Arch) -> tuple[int, ...]: ...

    def encode(self, arch: Arch) -> str: ...

    def decode(self, text: str) -> Arch: ...

    def build(self, arch: Arch, num_classes: int, **kwargs: Any) -> nn.Module: ...

    def benchmark(self, path: str | Path | None = None) -> Benchmark | None: ...


def feature_matrix(space: SearchSpace, archs: Sequence[Any]) -> np.ndarray:
    """``space.features(arch)`` of every architecture, stacked: (len(archs), D) int64 (NB201: the op
    index of each of the 6 edges; DARTS: (op index, input) of each of the 16 pairs)."""
    return np.array([space.features(arch) for arch in archs], dtype=np.int64).reshape(len(archs), -1)


class BaseSpace:
    """Defaults of the optional capabilities: no tabular benchmark, no supernet, CPU latency measured here."""

    name: str = ""

    def benchmark(self, path: str | Path | None = None) -> Benchmark | None:
        """This space's tabular benchmark (``path``: the user's copy), or None when it has none."""
        if path is not None:
            raise SearchkitError(f"the {self.name} space has no tabular benchmark; drop table: {path}")
        return None

    def rank_table(self, path: str | Path | None = None) -> RankTable | None:
        """The table ``searchkit correlate`` ranks metrics against (``path``: the user's copy): the
        space's benchmark by default; None when the space has neither."""
        return self.benchmark(path)

    def is_degenerate(self, arch: Any) -> bool | None:
        """Whether ``arch`` computes no function of its input worth scoring (NB201: no convolution
        on any input-output path); None when the space does not say."""
        return None

    def canonical(self, arch: Any) -> Hashable | None:
        """The representative of the architectures that compute the same function as ``arch``
        (NB201: its equivalence class); None when the space knows no such equivalence."""
        return None

    def allows(self, arch: Any) -> bool:
        """Whether sampling and mutation may return ``arch`` (a space with sampling options, such as
        NB201's ``exclude_degenerate``, says no to some); every architecture by default."""
        return True

    def supernet(self) -> type[SuperNet]:
        """The class of this space's one-shot network over all its architectures (NASI)."""
        raise SearchkitError(f"the {self.name} space has no supernet; NASI searches spaces that have one")

    def cost_model(self, device: str, quantity: str = "latency", dataset: str | None = None,
                   table: str | Path | None = None, **measure: Any) -> CostModel:
        """The ``quantity`` (latency | energy) of this space's architectures on ``device``.

        The default: ``cpu`` latency measured on this machine (``measure``:
        :class:`~searchkit.hardware.cost_models.MeasuredLatency`'s options: num_classes, input_shape,
        build, batch_size, warmup, repeats, threads, seed). A space with a cost table overrides
        this for the table's devices (``dataset``: whose input size; ``table``: the user's copy)."""
        if device == MEASURED_DEVICE:
            if quantity != "latency":
                raise SearchkitError(f"only latency can be measured on {MEASURED_DEVICE}, not {quantity}")
            return MeasuredLatency(self, **measure)
        raise SearchkitError(f"the {self.name} space has no hardware cost table (device {device!r}); "
                             f"use device: {MEASURED_DEVICE} (latency measured on this machine)")


#: Every search space, by the name configs use: each space module registers its class with
#: ``@SPACES.register(name)`` (found on the first lookup, :mod:`searchkit.registry`).
SPACES: Registry[SearchSpace] = Registry("search space", "searchkit.spaces")
def __getattr__(name: str) -> Any:
    """``Space``: the old name of :class:`BaseSpace` (it collided with :class:`SearchSpace`), for one release."""
    if name == "Space":
        warnings.warn("searchkit.spaces.base.Space is renamed BaseSpace; the old name goes in the next release",
                      DeprecationWarning, stacklevel=2)
        return BaseSpace
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
