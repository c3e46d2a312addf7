"""Hardware cost models: the latency or energy of an architecture on a named device.

(Renamed from ``searchkit.hardware.cost``, which collided with :mod:`searchkit.metrics.cost`,
the parameter and FLOP counts.) Cost models sit below the spaces (docs/architecture.md,
"Levels"): a space offers one (:meth:`searchkit.spaces.base.BaseSpace.cost_model`), and
:class:`MeasuredLatency` needs only what a space does (:class:`NetworkSource`).

A :class:`CostModel` maps an architecture's text (``space.encode(arch)``) to one number in a fixed
unit. Two kinds:

- :class:`TableCost`: a HW-NAS-Bench lookup (NB201 cells on six real devices, see
  :mod:`searchkit.tabular.hwnas`); it can also enumerate every cell's cost (:class:`EnumerableCost`),
  which is what exact feasible sets and true Pareto fronts need.
- :class:`MeasuredLatency`: for spaces or datasets without a table, the CPU latency of the built
  network on this machine: inference mode, a fixed number of threads, batch 1 by default, the
  median of ``repeats`` timed forward passes after ``warmup`` untimed ones (``time.perf_counter``),
  cached per architecture text.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence, runtime_checkable

import numpy as np
import torch
from torch import nn

from searchkit.errors import SearchkitError
from searchkit.tabular.hwnas import UNITS, HWNASTable, check_device

#: the device name of :class:`MeasuredLatency` (this machine's CPU)
MEASURED_DEVICE = "cpu"


@runtime_checkable
class CostModel(Protocol):
    """Cost of architectures given as their text: ``quantity`` (latency | energy) in ``unit``
    (ms | mJ) on ``device``; ``name`` is ``<device>_<quantity>``. Optional: ``charge(text)``, the
    wall seconds obtaining that cost took (a measurement; absent or 0 for a lookup), which a
    search charges as training-free work (:class:`searchkit.oracles.CostOracle`)."""

    name: str
    device: str
    quantity: str
    unit: str

    def cost(self, text: str) -> float: ...

    def costs(self, texts: Sequence[str]) -> np.ndarray: ...


@runtime_checkable
class EnumerableCost(CostModel, Protocol):
    """A cost model that knows every architecture of its space (a table)."""

    def all_costs(self) -> tuple[tuple[str, ...], np.ndarray]: ...


class NetworkSource(Protocol):
    """What :class:`MeasuredLatency` needs of a search space: its ``name``, ``decode`` and ``build``."""

    name: str

    def decode(self, text: str) -> Any: ...

    def build(self, arch: Any, num_classes: int, **kwargs: Any) -> nn.Module: ...


class TableCost:
    """HW-NAS-Bench ``quantity`` on ``device`` for NB201 arch strings (:meth:`NB201Space.encode`).

    A cell the benchmark did not measure (Edge TPU gaps) raises SearchkitError from :meth:`cost`
    and :meth:`costs`; :meth:`all_costs` returns it as NaN.
    """

    def __init__(self, table: HWNASTable, device: str, quantity: str = "latency") -> None:
        self.name = check_device(device, quantity)
        self.table, self.device, self.quantity, self.unit = table, device, quantity, UNITS[quantity]
        self._values = table.column(device, quantity)

    @classmethod
    def load(cls, device: str, quantity: str = "latency", dataset: str = "cifar10",
             path: str | Path | None = None) -> "TableCost":
        """The cost model of :meth:`HWNASTable.load` ``(dataset, path)``."""
        return cls(HWNASTable.load(dataset, path), device, quantity)

    def cost(self, text: str) -> float:
        return self.table.cost(text, self.device, self.quantity)

    def charge(self, text: str) -> float:
        """A lookup: nothing to charge."""
        return 0.0

    def costs(self, texts: Sequence[str]) -> np.ndarray:
        """Costs of ``texts``, shape (len(texts),); SearchkitError at the first unmeasured one."""
        index = self.table.indices_of(texts)
        values = self._values[index]
        gaps = np.flatnonzero(np.isnan(values))
        if len(gaps):
            raise self.table.missing_error(int(index[gaps[0]]), self.device, self.quantity)
        return values

    def all_costs(self) -> tuple[tuple[str, ...], np.ndarray]:
        """(every arch string, its cost, shape (n,), NaN where not measured), in NB201 index order."""
        return self.table.arch_strs, self._values

    def __repr__(self) -> str:
        return f"TableCost({self.name} [{self.unit}] from {self.table.source})"


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` intra-op threads, then restore the previous number."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def measure_latency(net: nn.Module, x: torch.Tensor, warmup: int = 5, repeats: int = 20, threads: int = 1,
                    clock: Callable[[], float] = time.perf_counter) -> float:
    """Median milliseconds of ``repeats`` forward passes of ``net`` on ``x`` (batch, C, H, W) after
    ``warmup`` untimed ones, in eval and inference mode with ``threads`` intra-op threads.

    The train/eval flag of ``net`` is restored. ``clock`` returns seconds (a test can inject one).
    """
    if warmup < 0 or repeats < 1 or threads < 1:
        raise SearchkitError(f"latency measurement needs warmup >= 0, repeats >= 1, threads >= 1; "
                             f"got {warmup}, {repeats}, {threads}")
    was_training = net.training
    net.eval()
    times = np.empty(repeats)
    try:
        with torch_threads(threads), torch.inference_mode():
            for _ in range(warmup):
                net(x)
            for r in range(repeats):
                start = clock()
                net(x)
                times[r] = clock() - start
    finally:
        net.train(was_training)
    return float(np.median(times) * 1e3)


class MeasuredLatency:
    """CPU latency (ms) of ``space.build(arch, num_classes, in_channels=input_shape[0], **build)`` on
    this machine, for one batch of ``batch_size`` inputs of ``input_shape`` (C, H, W): see
    :func:`measure_latency`. Networks are initialised from ``seed``; values are cached per text,
    with the wall seconds each measurement took (:meth:`charge`).

    Timings depend on the machine's load: measure on a quiet machine (the project's CPU lock).
    """

    device = MEASURED_DEVICE
    quantity = "latency"
    unit = "ms"
    name = f"{MEASURED_DEVICE}_latency"

    def __init__(self, space: NetworkSource, num_classes: int = 10, input_shape: tuple[int, int, int] = (3, 32, 32),
                 batch_size: int = 1, warmup: int = 5, repeats: int = 20, threads: int = 1,
                 build: dict[str, Any] | None = None, seed: int = 0,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        if batch_size < 1 or len(input_shape) != 3:
            raise SearchkitError(f"measured latency needs batch_size >= 1 and input_shape (C, H, W); "
                                 f"got {batch_size} and {input_shape}")
        self.space, self.num_classes, self.input_shape = space, num_classes, tuple(input_shape)
        self.batch_size, self.warmup, self.repeats, self.threads = batch_size, warmup, repeats, threads
        self.build, self.seed, self.clock = dict(build or {}), seed, clock
        self.cache: dict[str, float] = {}
        self.seconds: dict[str, float] = {}

    def cost(self, text: str) -> float:
        if text not in self.cache:
            start = time.perf_counter()
            arch = self.space.decode(text)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                net = self.space.build(arch, self.num_classes, in_channels=self.input_shape[0], **self.build)
                x = torch.randn(self.batch_size, *self.input_shape)
            self.cache[text] = measure_latency(net, x, self.warmup, self.repeats, self.threads, self.clock)
            self.seconds[text] = time.perf_counter() - start
        return self.cache[text]

    def charge(self, text: str) -> float:
        """The wall seconds of building and timing ``text``'s network (0 before it was measured)."""
        return self.seconds.get(text, 0.0)

    def costs(self, texts: Sequence[str]) -> np.ndarray:
        """Costs of ``texts``, shape (len(texts),): one timing per architecture not yet cached."""
        return np.array([self.cost(t) for t in texts], dtype=np.float64)

    def __repr__(self) -> str:
        return (f"MeasuredLatency({self.space.name} on cpu, batch {self.batch_size}, input {self.input_shape}, "
                f"{self.threads} thread(s), median of {self.repeats} after {self.warmup} warm-up)")
