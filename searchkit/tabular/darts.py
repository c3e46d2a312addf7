"""A ranking ground truth over the DARTS space: 1,000 trained cells and their CIFAR-10 accuracy.

Source: the cells released with SWAP (Peng et al., "SWAP-NAS: Sample-Wise Activation Patterns for
Ultra-fast NAS", ICLR 2024), where they rank training-free metrics on the DARTS space. The file
(``darts/darts_1000_cifar10_valid.csv`` under the data roots, no header) holds one row per cell:
its genotype as the DARTS code prints it (``Genotype(normal=[...], ...)``, the same cell as normal
and reduction cell) and its CIFAR-10 validation accuracy (%) after 200 epochs. The index of a cell
is its row number (0-based).

**Rank use only.** The authors do not document the network those accuracies were trained on
(depth, width; accuracies 10.2-86.6 %, median 80.3 %, i.e. a small network), so they come from a
different training protocol than anything searchkit evaluates: correlate scores against them
(``searchkit correlate --space darts``), never report them as a DARTS result or compare them with
an evaluation's accuracy. The table covers 1,000 cells, not the space, so it is a
:class:`~searchkit.spaces.base.RankTable` and not a :class:`~searchkit.spaces.base.Benchmark`: a
search never validates or evaluates with it.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from searchkit.errors import SearchkitError
from searchkit.paths import require_data
from searchkit.tabular.indexed import IndexedArchs

DEFAULT_CSV = "darts/darts_1000_cifar10_valid.csv"
_FORMAT_HINT = ("expected a CSV without header, one row per cell: a quoted DARTS Genotype(...) text and its "
                "accuracy in %, like ../shared/data/darts/darts_1000_cifar10_valid.csv")


class DartsTable(IndexedArchs):
    """CIFAR-10 validation accuracy (%) of trained DARTS cells, by row index (module docstring)."""

    name = "DARTS-1000 (SWAP)"
    arch_kind = "DARTS genotype of this table"
    #: the accuracy columns (dataset, split, epochs) it has: one
    targets = (("cifar10", "valid", 200),)
    protocol = ("CIFAR-10 validation accuracy (%) after 200 epochs, as published with SWAP (Peng et al., ICLR 2024), "
                "of a network whose depth and width its authors do not document: a ranking ground truth from another "
                "training protocol than searchkit's evaluation, for rank correlation only")

    def __init__(self, arch_strs: list[str], accuracy: np.ndarray, source: str) -> None:
        super().__init__(arch_strs, source)
        self.accuracy_column = np.asarray(accuracy, dtype=np.float64)
        self.accuracy_column.flags.writeable = False

    @classmethod
    def load(cls, path: str | Path | None = None) -> DartsTable:
        """Read the CSV (``path=None``: ``darts/darts_1000_cifar10_valid.csv`` under the data roots)."""
        path = require_data(path, DEFAULT_CSV, "the DARTS ranking table needs", "pass --table PATH")
        try:
            with open(path, newline="", encoding="utf-8") as handle:
                rows = list(csv.reader(handle))
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            raise SearchkitError(f"{path} is not a readable CSV ({e}); {_FORMAT_HINT}") from None
        bad = next((k for k, row in enumerate(rows) if len(row) != 2 or not row[0].startswith("Genotype(")), None)
        if not rows or bad is not None:
            raise SearchkitError(f"{path} line {1 if bad is None else bad + 1} is not (genotype, accuracy); {_FORMAT_HINT}")
        try:
            accuracy = np.array([float(acc) for _, acc in rows])
        except ValueError as e:
            raise SearchkitError(f"{path}: an accuracy is not a number ({e}); {_FORMAT_HINT}") from None
        return cls([text for text, _ in rows], accuracy, str(path))

    def dataset_for(self, name: str) -> str | None:
        """``cifar10`` for CIFAR-10 (either protocol name), else None."""
        return "cifar10" if name in ("cifar10", "cifar10-valid") else None

    def column(self, dataset: str, split: str = "valid", epochs: int = 200) -> np.ndarray:
        """(n,) accuracies (%) in index order; only ``("cifar10", "valid", 200)`` exists."""
        if (dataset, split, epochs) not in self.targets:
            raise SearchkitError(f"{self.name} has only CIFAR-10 validation accuracy after 200 epochs, "
                                 f"not {dataset} {split} after {epochs}")
        return self.accuracy_column

    def accuracy(self, index: int, dataset: str, split: str = "valid", epochs: int = 200) -> float:
        """One cell's accuracy (%), see :meth:`column`."""
        return float(self.column(dataset, split, epochs)[self._check_index(index)])
