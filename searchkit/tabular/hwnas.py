"""HW-NAS-Bench: measured hardware cost of all 15,625 NAS-Bench-201 cells on six devices.

Source: Li et al., "HW-NAS-Bench: Hardware-Aware Neural Architecture Search Benchmark", ICLR 2021.
Devices (section 3.2 of the paper): ``edgegpu`` (NVIDIA Jetson TX2: latency, energy), ``raspi4``
(Raspberry Pi 4: latency), ``edgetpu`` (Google Edge TPU: latency), ``pixel3`` (Pixel 3 phone:
latency), ``eyeriss`` (Eyeriss ASIC, simulated: latency, energy) and ``fpga`` (Xilinx ZC706:
latency, energy). Latency is milliseconds and energy millijoules for one image (batch 1), with
inputs of the named dataset's size (CIFAR: 32x32, ImageNet16-120: 16x16).

Two inputs give the same :class:`HWNASTable`:

- the CSV exports shipped beside the project (``hwnas/hw_nas_bench_{c10,c100,in16}.csv``: one row
  per architecture in the official NB201 index order, an empty Edge TPU cell where the benchmark
  has no measurement; columns described in ``shared/data/README.md``);
- the official ``HW-NAS-Bench-v1_0.pickle``, a plain dict read here without the authors' package:
  ``obj["nasbench201"][dataset][column][i]`` is the value of ``column`` for NB201 index ``i`` and
  ``obj["nasbench201"][dataset]["config"][i]["arch_str"]`` its arch string (the layout
  ``hw_nas_bench_api.HWNASBenchAPI.query_by_index`` reads). The official file marks an Edge TPU
  model that failed the Edge TPU compiler with -1 (HW-NAS-Bench issue #11); every negative value
  here becomes NaN, i.e. "not measured", whichever the input.
"""
from __future__ import annotations

import operator
import pickle
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from searchkit.errors import SearchkitError
from searchkit.paths import data_roots, find_data
from searchkit.tabular.indexed import IndexedArchs, read_indexed_csv
from searchkit.tabular.nb201 import canonical_dataset

#: device -> the quantities HW-NAS-Bench reports for it on NB201
DEVICES: dict[str, tuple[str, ...]] = {
    "edgegpu": ("latency", "energy"),
    "raspi4": ("latency",),
    "edgetpu": ("latency",),
    "pixel3": ("latency",),
    "eyeriss": ("latency", "energy"),
    "fpga": ("latency", "energy"),
}
DEVICE_NAMES = {
    "edgegpu": "edge GPU (NVIDIA Jetson TX2)",
    "raspi4": "Raspberry Pi 4",
    "edgetpu": "Google Edge TPU",
    "pixel3": "Pixel 3 phone",
    "eyeriss": "Eyeriss ASIC",
    "fpga": "FPGA (Xilinx ZC706)",
}
UNITS = {"latency": "ms", "energy": "mJ"}
COST_COLUMNS: tuple[str, ...] = tuple(f"{d}_{q}" for d, qs in DEVICES.items() for q in qs)
PICKLE_NAME = "HW-NAS-Bench-v1_0.pickle"
_CSV_SUFFIX = {"cifar10": "c10", "cifar100": "c100", "ImageNet16-120": "in16"}

_FORMAT_HINT = (
    "expected a CSV with columns 'index', 'arch_str', " + ", ".join(COST_COLUMNS)
    + " (like shared/data/hwnas/hw_nas_bench_c10.csv) or the official " + PICKLE_NAME
)


def default_csv(dataset: str) -> str:
    """The CSV's path under a data root, e.g. ``hwnas/hw_nas_bench_c10.csv``."""
    return f"hwnas/hw_nas_bench_{_CSV_SUFFIX[canonical_dataset(dataset)]}.csv"


def devices_text() -> str:
    """'edgegpu (latency, energy), raspi4 (latency), ...' for error messages."""
    return ", ".join(f"{d} ({', '.join(qs)})" for d, qs in DEVICES.items())


def check_device(device: str, quantity: str) -> str:
    """The column name ``<device>_<quantity>``; SearchkitError listing what exists on a miss."""
    if device not in DEVICES:
        raise SearchkitError(f"unknown HW-NAS-Bench device {device!r}; choose one of: {devices_text()}")
    if quantity not in DEVICES[device]:
        having = [d for d, qs in DEVICES.items() if quantity in qs]
        detail = f"devices with {quantity}: {', '.join(having)}" if having else "quantities are latency and energy"
        raise SearchkitError(
            f"HW-NAS-Bench has no {quantity} on {device} (only {', '.join(DEVICES[device])}); {detail}"
        )
    return f"{device}_{quantity}"


class _PlainUnpickler(pickle.Unpickler):
    """Unpickles only containers, numbers, strings and numpy arrays/scalars: a benchmark pickle
    needs nothing else, and refusing other globals keeps a foreign file from running code."""

    _NUMPY = {"_reconstruct", "ndarray", "dtype", "scalar", "_frombuffer"}
    _NUMPY_MODULES = {"numpy", "numpy.core.multiarray", "numpy._core.multiarray",
                      "numpy.core.numeric", "numpy._core.numeric"}
    _BUILTINS = {"dict", "list", "tuple", "set", "frozenset", "float", "int", "str", "bool", "complex"}

    def find_class(self, module: str, name: str) -> Any:
        if (module in self._NUMPY_MODULES and name in self._NUMPY) or \
                (module == "builtins" and name in self._BUILTINS) or (module, name) == ("collections", "OrderedDict"):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (a benchmark pickle holds only dicts, lists and numbers)")


def _by_index(values: Any, what: str, source: str) -> list:
    """A per-architecture collection (list, tuple, array, or dict keyed 0..n-1) as a list in index order."""
    if isinstance(values, dict):
        try:
            keys = sorted(values, key=operator.index)
        except TypeError:
            raise SearchkitError(f"{source}: {what} is a dict with non-integer keys; {_FORMAT_HINT}") from None
        if keys != list(range(len(keys))):
            raise SearchkitError(f"{source}: {what} must hold each index 0..{len(keys) - 1} once; {_FORMAT_HINT}")
        return [values[k] for k in keys]
    if isinstance(values, (list, tuple, np.ndarray)):
        return list(values)
    raise SearchkitError(f"{source}: {what} is a {type(values).__name__}, not a list or dict; {_FORMAT_HINT}")


class HWNASTable(IndexedArchs):
    """HW-NAS-Bench costs of NB201 cells for one dataset's input size.

    ``columns`` maps a column name (``<device>_<quantity>``, e.g. ``pixel3_latency``, plus any extra
    numeric column of the input such as ``eyeriss_arithmetic_intensity``) to a read-only float64
    array of shape (n,), n = 15,625 for the full benchmark, NaN where nothing was measured.
    Rows are in the official NB201 index order; ``arch_strs`` holds each row's official string
    (lookups: :class:`~searchkit.tabular.indexed.IndexedArchs`).
    """

    def __init__(self, dataset: str, arch_strs: Sequence[str], columns: dict[str, np.ndarray], source: str) -> None:
        self.dataset = canonical_dataset(dataset)
        n = len(arch_strs)
        missing = [c for c in COST_COLUMNS if c not in columns]
        if missing:
            raise SearchkitError(f"{source}: missing columns {', '.join(missing)}; {_FORMAT_HINT}")
        self.columns: dict[str, np.ndarray] = {}
        for name, values in columns.items():
            arr = np.array(values, dtype=np.float64)
            if arr.shape != (n,):
                raise SearchkitError(f"{source}: column {name} has shape {arr.shape}, expected ({n},)")
            if name in COST_COLUMNS:
                arr[arr < 0] = np.nan  # the official file's -1: not measured
            arr.flags.writeable = False
            self.columns[name] = arr
        super().__init__([s.strip() for s in arch_strs], source)

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, dataset: str = "cifar10", path: str | Path | None = None) -> "HWNASTable":
        """The table for ``dataset`` (cifar10, cifar100, ImageNet16-120 or c10/c100/in16) from ``path``.

        ``path``: a CSV export or the official ``HW-NAS-Bench-v1_0.pickle`` (which holds all three
        datasets). None: ``hwnas/hw_nas_bench_<c10|c100|in16>.csv``, else ``hwnas/HW-NAS-Bench-v1_0.pickle``,
        under the data roots of :func:`searchkit.paths.find_data`.
        """
        dataset = canonical_dataset(dataset)
        if path is None:
            path = find_data(default_csv(dataset)) or find_data(f"hwnas/{PICKLE_NAME}")
            if path is None:
                roots = ", ".join(str(r) for r in data_roots())
                raise SearchkitError(
                    f"no HW-NAS-Bench table found: looked for {default_csv(dataset)} and hwnas/{PICKLE_NAME} "
                    f"under {roots}; set SEARCHKIT_DATA or pass the table's path"
                )
        path = Path(path).expanduser()
        if not path.is_file():
            raise SearchkitError(f"HW-NAS-Bench table {path} does not exist; {_FORMAT_HINT}")
        if path.suffix in (".pickle", ".pkl"):
            return cls._from_pickle(path, dataset)
        return cls._from_csv(path, dataset)

    @classmethod
    def _from_csv(cls, path: Path, dataset: str) -> "HWNASTable":
        arch_strs, cols = read_indexed_csv(path, COST_COLUMNS, _FORMAT_HINT, blank_is_nan=True)
        return cls(dataset, arch_strs, cols, str(path))

    @classmethod
    def _from_pickle(cls, path: Path, dataset: str) -> "HWNASTable":
        try:
            with open(path, "rb") as f:
                obj = _PlainUnpickler(f).load()
        except (OSError, EOFError, ValueError, pickle.UnpicklingError, AttributeError, ImportError) as e:
            raise SearchkitError(f"{path} could not be read as a pickle ({type(e).__name__}: {e}); {_FORMAT_HINT}") from None
        try:
            entry = obj["nasbench201"][dataset]
            configs = _by_index(entry["config"], f"nasbench201/{dataset}/config", str(path))
            arch_strs = [str(c["arch_str"]) for c in configs]
        except (KeyError, TypeError, IndexError) as e:
            raise SearchkitError(
                f"{path} lacks nasbench201/{dataset}/config/<i>/arch_str ({type(e).__name__}: {e}); {_FORMAT_HINT}"
            ) from None
        cols = {}
        for name, values in entry.items():
            if name == "config":
                continue
            try:
                cols[name] = np.array(_by_index(values, f"nasbench201/{dataset}/{name}", str(path)), dtype=np.float64)
            except (TypeError, ValueError):
                if name in COST_COLUMNS:
                    raise SearchkitError(f"{path}: nasbench201/{dataset}/{name} is not all numbers") from None
        return cls(dataset, arch_strs, cols, f"{path} [{dataset}]")

    # ------------------------------------------------------------------ queries
    def column(self, device: str, quantity: str = "latency") -> np.ndarray:
        """``quantity`` (ms or mJ, see :data:`UNITS`) of every architecture on ``device``, shape (n,),
        read-only, NaN where HW-NAS-Bench has no measurement."""
        return self.columns[check_device(device, quantity)]

    def cost(self, arch: int | str, device: str, quantity: str = "latency") -> float:
        """One architecture's (NB201 index or arch string) ``quantity`` on ``device``; SearchkitError
        naming the architecture and the devices that have it when this one was not measured."""
        i = self.index_of(arch) if isinstance(arch, str) else self._check_index(arch)
        value = float(self.column(device, quantity)[i])
        if np.isnan(value):
            raise self.missing_error(i, device, quantity)
        return value

    def missing_error(self, index: int, device: str, quantity: str) -> SearchkitError:
        """The error for a cost HW-NAS-Bench lacks: which architecture, and where it is measured."""
        having = [d for d, qs in DEVICES.items() if quantity in qs and not np.isnan(self.columns[f"{d}_{quantity}"][index])]
        gaps = int(np.isnan(self.column(device, quantity)).sum())
        return SearchkitError(
            f"HW-NAS-Bench has no {device} {quantity} for NB201 architecture {index} ({self.arch_strs[index]}; "
            f"{gaps:,} of {len(self):,} cells lack it on {self.dataset}); {quantity} of this architecture is measured on: "
            f"{', '.join(having) or 'no device'}"
        )
