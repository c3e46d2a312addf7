"""What the NB201 benchmark tables share: one row per cell in the official index order, keyed by
its arch string, read from a CSV with columns ``index``, ``arch_str`` and numeric columns."""
from __future__ import annotations

import csv
import operator
from pathlib import Path
from typing import Sequence

import numpy as np

from searchkit.errors import SearchkitError


def read_indexed_csv(path: Path, required: Sequence[str], hint: str,
                     blank_is_nan: bool = False) -> tuple[list[str], dict[str, np.ndarray]]:
    """(arch strings, float64 columns) of a CSV with columns ``index``, ``arch_str`` and ``required``
    (others kept too), rows ordered by ``index``, which must hold each of 0..n-1 once.

    ``blank_is_nan``: an empty field is NaN (not measured) instead of an error. Every problem is a
    SearchkitError naming ``path`` and ending in ``hint`` (what a valid file looks like).
    """
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise SearchkitError(f"{path} is not a readable CSV ({e}); {hint}") from None
    if not header or not rows:
        raise SearchkitError(f"{path} has no header or no rows; {hint}")
    missing = [c for c in ("index", "arch_str", *required) if c not in header]
    if missing:
        raise SearchkitError(f"{path}: missing columns {', '.join(missing)}; {hint}")
    bad = next((i for i, r in enumerate(rows) if len(r) != len(header)), None)
    if bad is not None:
        raise SearchkitError(f"{path} line {bad + 2}: {len(rows[bad])} fields, header has {len(header)}")
    cols: dict[str, np.ndarray] = {}
    arch: Sequence[str] = ()
    for name, texts in zip(header, zip(*rows)):
        if name == "arch_str":
            arch = texts
            continue
        if blank_is_nan:
            texts = tuple(t if t.strip() else "nan" for t in texts)
        try:
            cols[name] = np.array(texts, dtype=np.float64)
        except ValueError as e:
            raise SearchkitError(f"{path}: column {name} is not all numbers ({e})") from None
    index = cols.pop("index")
    order = np.argsort(index, kind="stable")
    if not np.array_equal(index[order], np.arange(len(rows))):
        raise SearchkitError(f"{path}: column 'index' must hold each of 0..{len(rows) - 1} once")
    return [arch[i] for i in order], {k: v[order] for k, v in cols.items()}


class IndexedArchs:
    """Arch strings in the table's index order (NB201: the official one), looked up both ways;
    messages name ``source`` and :attr:`arch_kind`."""

    #: what an arch string of the table is, for messages
    arch_kind = "NAS-Bench-201 architecture string"

    def __init__(self, arch_strs: Sequence[str], source: str) -> None:
        self.source = source
        self.arch_strs: tuple[str, ...] = tuple(arch_strs)
        self._index = {s: i for i, s in enumerate(self.arch_strs)}
        if len(self._index) != len(self.arch_strs):
            dup = next(s for i, s in enumerate(self.arch_strs) if self._index[s] != i)
            raise SearchkitError(f"{source}: architecture {dup} appears more than once")

    def __len__(self) -> int:
        return len(self.arch_strs)

    def _check_index(self, index: int) -> int:
        try:
            i = operator.index(index)
        except TypeError:
            raise SearchkitError(f"architecture index must be an integer, got {index!r}") from None
        if not 0 <= i < len(self):
            raise SearchkitError(f"architecture index {i} out of range 0..{len(self) - 1}")
        return i

    def index_of(self, arch_str: str) -> int:
        """Official index of an arch string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``."""
        try:
            return self._index[arch_str.strip()]
        except (KeyError, AttributeError):
            raise SearchkitError(
                f"{arch_str!r} is not a {self.arch_kind}; expected e.g. {self.arch_strs[0]}"
            ) from None

    def indices_of(self, arch_strs: Sequence[str]) -> np.ndarray:
        """Official indices of many arch strings, shape (len(arch_strs),), int64."""
        return np.array([self.index_of(s) for s in arch_strs], dtype=np.int64)

    def arch_str(self, index: int) -> str:
        """Official arch string of an index."""
        return self.arch_strs[self._check_index(index)]
