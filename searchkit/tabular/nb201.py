"""NAS-Bench-201 ground truth: accuracies, parameter counts and training cost of all 15,625 cells.

Source: Dong & Yang, "NAS-Bench-201: Extending the Scope of Reproducible Neural Architecture
Search", ICLR 2020. Every value is the benchmark's mean over its training seeds.

Two inputs give the same :class:`NB201Table`:

- the CSV export shipped beside the project (``nb201/nb201_table.csv``, one row per
  architecture in the official index order; columns described in ``shared/data/README.md``);
- the official ``NAS-Bench-201-v1_*.pth`` file read through the ``nas-bench-201`` package, or a
  NATS-Bench topology file/directory (``NATS-tss-v1_0-*``) read through ``nats_bench``.
  Both are mapped onto the CSV's columns once, at load time.

Protocols (from the benchmark): CIFAR-10 "valid" is the ``cifar10-valid`` protocol (train on
25k images, validate on the other 25k of the training set); CIFAR-10 "test" is the ``cifar10``
protocol (train on all 50k, test on the 10k test set). CIFAR-100 and ImageNet16-120 train on
their full training set and split their test set into valid/test halves.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Callable

import numpy as np

from searchkit.errors import SearchkitError
from searchkit.paths import data_roots, find_data
from searchkit.tabular.indexed import IndexedArchs, read_indexed_csv

DATASETS = ("cifar10", "cifar100", "ImageNet16-120")
SPLITS = ("test", "valid")
EPOCHS = (200, 12)
DEFAULT_CSV = "nb201/nb201_table.csv"
#: searchkit dataset names (:mod:`searchkit.data`) -> the table's dataset.
DATA_NAMES = {"cifar10": "cifar10", "cifar10-valid": "cifar10", "cifar100": "cifar100",
              "ImageNet16-120": "ImageNet16-120"}

_ALIASES = {
    "cifar10": "cifar10",
    "c10": "cifar10",
    "cifar100": "cifar100",
    "c100": "cifar100",
    "imagenet16-120": "ImageNet16-120",
    "in16": "ImageNet16-120",
}
_PREFIX = {"cifar10": "c10", "cifar100": "c100", "ImageNet16-120": "in16"}


def _acc_col(prefix: str, split: str, epochs: int) -> str:
    return f"{prefix}_{split}_acc_{epochs}ep"


REQUIRED_COLUMNS: tuple[str, ...] = tuple(
    [_acc_col(p, s, e) for p in _PREFIX.values() for s in SPLITS for e in EPOCHS]
    + [f"{p}_train_time_200ep_s" for p in _PREFIX.values()]
    + [f"{p}_params_mb" for p in _PREFIX.values()]
)

_FORMAT_HINT = (
    "expected a CSV with columns 'index', 'arch_str', " + ", ".join(REQUIRED_COLUMNS)
    + " (like shared/data/nb201/nb201_table.csv), an official NAS-Bench-201-v1_*.pth, "
    "or a NATS-Bench topology file NATS-tss-v1_0-*"
)


def canonical_dataset(dataset: str) -> str:
    """'cifar10' | 'cifar100' | 'ImageNet16-120' for a name or alias (c10, c100, in16), any case."""
    key = str(dataset).lower()
    if key not in _ALIASES:
        raise SearchkitError(
            f"unknown NAS-Bench-201 dataset {dataset!r}; choose one of: "
            f"{', '.join(DATASETS)} (or c10, c100, in16)"
        )
    return _ALIASES[key]


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise SearchkitError(f"unknown NAS-Bench-201 split {split!r}; choose one of: test, valid")
    return split


def _check_epochs(epochs: int) -> int:
    if epochs not in EPOCHS:
        raise SearchkitError(
            f"NAS-Bench-201 records only 200- and 12-epoch training; got epochs={epochs!r}"
        )
    return int(epochs)


_API_ERRORS = (AssertionError, OSError, EOFError, RuntimeError, ValueError, pickle.UnpicklingError)


def _open_api(factory: Callable[[], Any], path: Path) -> Any:
    """Construct an official benchmark API, turning its errors on a bad file into SearchkitError."""
    try:
        return factory()
    except _API_ERRORS as e:
        raise SearchkitError(
            f"{path} could not be read as a benchmark file ({type(e).__name__}: {e}); "
            + _FORMAT_HINT
        ) from None


class NB201Table(IndexedArchs):
    """All NAS-Bench-201 ground truth as numpy columns indexed by the official architecture index.

    ``columns`` maps a CSV column name (e.g. ``c10_test_acc_200ep``) to a read-only float64
    array of shape (n,), n = 15,625 for the full benchmark; ``source`` names where it came from.
    Accuracies are percent, parameters millions, times seconds. Index and arch-string lookups:
    :class:`~searchkit.tabular.indexed.IndexedArchs`.
    """

    name = "NAS-Bench-201"
    #: the accuracy columns (dataset, split, epochs) a correlation report reads, in order
    targets = tuple((d, s, 200) for d in DATASETS for s in SPLITS)
    protocol = ("the benchmark's 200-epoch accuracy (%), mean over its training seeds; test and valid are its splits "
                "(CIFAR-10 valid: the cifar10-valid protocol, trained on 25k images)")

    def __init__(self, arch_strs: list[str], columns: dict[str, np.ndarray], source: str) -> None:
        n = len(arch_strs)
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise SearchkitError(f"{source}: missing columns {', '.join(missing)}; {_FORMAT_HINT}")
        super().__init__(arch_strs, source)
        self.columns: dict[str, np.ndarray] = {}
        for name, values in columns.items():
            arr = np.asarray(values, dtype=np.float64)
            if arr.shape != (n,):
                raise SearchkitError(
                    f"{source}: column {name} has shape {arr.shape}, expected ({n},)"
                )
            arr.flags.writeable = False
            self.columns[name] = arr

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | Path | None = None) -> "NB201Table":
        """Read the CSV export, an official ``NAS-Bench-201-v1_*.pth`` or a ``NATS-tss-v1_0-*``.

        ``path=None`` uses ``nb201/nb201_table.csv`` under the data roots of
        :func:`searchkit.paths.find_data`. The ``.pth``/NATS paths query every architecture
        through the official API once (slow: minutes, and the API's own memory footprint).
        """
        if path is None:
            found = find_data(DEFAULT_CSV)
            if found is None:
                roots = ", ".join(str(r) for r in data_roots())
                raise SearchkitError(
                    f"no NAS-Bench-201 table found: looked for {DEFAULT_CSV} under {roots}; "
                    "set SEARCHKIT_DATA or pass the table's path (config key benchmark.table)"
                )
            path = found
        path = Path(path).expanduser()
        if not path.exists():
            raise SearchkitError(f"NAS-Bench-201 table {path} does not exist; {_FORMAT_HINT}")
        if path.name.startswith("NATS-tss"):
            return cls._from_nats(path)
        if path.suffix == ".pth":
            return cls._from_nb201_pth(path)
        return cls._from_csv(path)

    @classmethod
    def _from_csv(cls, path: Path) -> "NB201Table":
        arch_strs, cols = read_indexed_csv(path, REQUIRED_COLUMNS, _FORMAT_HINT)
        return cls(arch_strs, cols, str(path))

    @classmethod
    def _from_nb201_pth(cls, path: Path) -> "NB201Table":
        try:
            from nas_201_api import NASBench201API
        except ImportError:
            raise SearchkitError(
                "reading NAS-Bench-201-v1_*.pth needs the nas-bench-201 package: "
                "pip install -e '.[nb201]'"
            ) from None
        api = _open_api(lambda: NASBench201API(str(path), verbose=False), path)
        return cls._from_api(api, str(path))

    @classmethod
    def _from_nats(cls, path: Path) -> "NB201Table":
        try:
            from nats_bench import create
        except ImportError:
            raise SearchkitError(
                "reading NATS-Bench files (NATS-tss-*) needs the nats_bench package: "
                "pip install nats_bench"
            ) from None
        api = _open_api(lambda: create(str(path), "tss", fast_mode=True, verbose=False), path)
        return cls._from_api(api, str(path))

    @classmethod
    def _from_api(cls, api: Any, source: str) -> "NB201Table":
        """Map the official API (``get_more_info``, ``get_cost_info``) onto the CSV's columns.

        Seed means (``is_random=False``). CIFAR-10 valid comes from ``cifar10-valid``
        ('valid-accuracy'), CIFAR-10 test from ``cifar10`` ('test-accuracy'); the CIFAR-10
        200-epoch time is the ``cifar10-valid`` run's 'train-all-time' (25k training images),
        as in the CSV. Values the file lacks (e.g. 12-epoch runs in v1_0) become NaN.
        """

        def info(index: int, dataset: str, hp: str) -> dict:
            try:
                return api.get_more_info(index, dataset, hp=hp, is_random=False)
            except (KeyError, ValueError):
                return {}

        n = len(api)
        cols = {name: np.full(n, np.nan) for name in REQUIRED_COLUMNS}
        for i in range(n):
            for epochs in EPOCHS:
                hp = str(epochs)
                c10v, c10 = info(i, "cifar10-valid", hp), info(i, "cifar10", hp)
                per = {"c10": (c10v, c10),
                       "c100": (info(i, "cifar100", hp),) * 2,
                       "in16": (info(i, "ImageNet16-120", hp),) * 2}
                for p, (valid, test) in per.items():
                    cols[_acc_col(p, "valid", epochs)][i] = valid.get("valid-accuracy", np.nan)
                    cols[_acc_col(p, "test", epochs)][i] = test.get("test-accuracy", np.nan)
                    if epochs == 200:
                        cols[f"{p}_train_time_200ep_s"][i] = valid.get("train-all-time", np.nan)
            for dataset, p in _PREFIX.items():
                cols[f"{p}_params_mb"][i] = api.get_cost_info(i, dataset)["params"]
        return cls([api[i] for i in range(n)], cols, source)

    # ------------------------------------------------------------------ queries
    def dataset_for(self, name: str) -> str | None:
        """The table's dataset for one of searchkit's dataset names (``cifar10-valid``: CIFAR-10,
        whose validation accuracies come from that protocol), or None when it has no results."""
        return DATA_NAMES.get(name)

    def _value(self, column: str, index: int) -> float:
        value = float(self.columns[column][self._check_index(index)])
        if np.isnan(value):
            raise SearchkitError(f"{self.source} has no value of {column} for architecture {index}")
        return value

    def column(self, dataset: str, split: str = "test", epochs: int = 200) -> np.ndarray:
        """Accuracies (%) of all architectures, shape (n,), read-only (splits: module docstring)."""
        p = _PREFIX[canonical_dataset(dataset)]
        return self.columns[_acc_col(p, _check_split(split), _check_epochs(epochs))]

    def accuracy(self, index: int, dataset: str, split: str = "test", epochs: int = 200) -> float:
        """Seed-mean accuracy (%) after ``epochs`` (200, or the benchmark's 12-epoch schedule)."""
        p = _PREFIX[canonical_dataset(dataset)]
        return self._value(_acc_col(p, _check_split(split), _check_epochs(epochs)), index)

    def params(self, index: int, dataset: str) -> float:
        """Parameters in millions (the classifier depends on the dataset's class count)."""
        return self._value(f"{_PREFIX[canonical_dataset(dataset)]}_params_mb", index)

    def train_time(self, index: int, dataset: str, epochs: int = 200) -> float:
        """Recorded seconds for one training run, used to charge simulated search cost.

        The 12-epoch time is 12/200 of the recorded 200-epoch time (per-epoch cost is the same;
        the benchmark's 12-epoch schedule only shortens the cosine decay). CIFAR-10 times are
        those of the ``cifar10-valid`` run (25k training images).
        """
        epochs = _check_epochs(epochs)
        total = self._value(f"{_PREFIX[canonical_dataset(dataset)]}_train_time_200ep_s", index)
        return total * epochs / 200

    def best(self, dataset: str, split: str = "test", epochs: int = 200) -> tuple[int, float]:
        """(index, accuracy %) of the most accurate architecture (NaNs ignored)."""
        col = self.column(dataset, split, epochs)
        i = int(np.nanargmax(col))
        return i, float(col[i])
