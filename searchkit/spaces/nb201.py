"""The NAS-Bench-201 search space (Dong & Yang, "NAS-Bench-201: Extending the Scope of
Reproducible Neural Architecture Search", ICLR 2020).

A cell is a DAG on 4 nodes; each of its 6 edges ``i <- j`` (j < i) carries one of 5 ops, so the
space has 5^6 = 15,625 cells. Node 0 is the cell input, node i = sum_{j<i} op_{i<-j}(node j),
and node 3 is the output. The official string lists the edges node by node:
``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from searchkit.errors import SearchkitError
from searchkit.paths import require_data
from searchkit.spaces.base import Space
from searchkit.spaces.ops import OP_FACTORIES, ResNetBasicBlock

if TYPE_CHECKING:
    from searchkit.hardware.cost import CostModel
    from searchkit.spaces.nb201_supernet import NB201SuperNet
    from searchkit.tabular import NB201Table

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
"""(to, from) node pairs in the official edge order."""
NUM_ARCHS = len(OPS) ** len(EDGES)
TABLE_RELATIVE = "nb201/nb201_table.csv"
_FORMAT = "the format is |op~0|+|op~0|op~1|+|op~0|op~1|op~2| with ops " + ", ".join(OPS)


@dataclass(frozen=True)
class NB201Arch:
    """One NAS-Bench-201 cell: ``ops[k]`` is the op on edge ``EDGES[k]``."""

    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.ops) != len(EDGES) or any(op not in OPS for op in self.ops):
            raise SearchkitError(f"NB201Arch needs {len(EDGES)} ops from {', '.join(OPS)}; got {self.ops!r}")


def _parse_error(problem: str, text: str) -> SearchkitError:
    return SearchkitError(f"NB201 arch string {text!r} {problem}; {_FORMAT}")


class NB201Cell(nn.Module):
    """One cell with C channels: x (m, C, H, W) -> node 3 (m, C, H, W)."""

    def __init__(self, arch: NB201Arch, C: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(OP_FACTORIES[op](C) for op in arch.ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        k = 0
        for i in range(1, 4):
            node = self.edges[k](nodes[0])
            for j in range(1, i):
                node = node + self.edges[k + j](nodes[j])
            k += i
            nodes.append(node)
        return nodes[3]


class NB201Network(nn.Module):
    """The benchmark's macro skeleton ("TinyNetwork" in its code), x (m, in_channels, H, W) ->
    logits (m, num_classes).

    Stem conv3x3(in_channels -> C, bias=False) + BN; stages of N cells with C, 2C, 4C channels,
    separated by :class:`ResNetBasicBlock` reductions; then BN + ReLU, global average pooling and
    a linear head. Needs H, W >= 4 (two stride-2 reductions).
    """

    def __init__(self, arch: NB201Arch, num_classes: int, C: int = 16, N: int = 5, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, C, 3, padding=1, bias=False), nn.BatchNorm2d(C)
        )
        layers: list[nn.Module] = []
        for stage, width in enumerate((C, 2 * C, 4 * C)):
            if stage > 0:
                layers.append(ResNetBasicBlock(width // 2, width))
            layers += [NB201Cell(arch, width) for _ in range(N)]
        self.cells = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.BatchNorm2d(4 * C), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(4 * C, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.cells(self.stem(x)))


class NB201Space(Space):
    """The NAS-Bench-201 space: strict string codec, sampling, mutation, official indices, networks,
    and its capabilities: the benchmark table (:meth:`benchmark`), NASI's supernet and
    HW-NAS-Bench's hardware costs (:meth:`cost_model`).

    ``table``: the benchmark table CSV (columns ``index``, ``arch_str``) that defines the official
    index order; by default found as ``nb201/nb201_table.csv`` under :func:`searchkit.paths.find_data`.
    It is read once, on the first :meth:`index`/:meth:`from_index` call.
    """

    name = "nb201"
    default_dataset = "digits"  # embedded: the quick start runs with no files

    def __init__(self, table: str | Path | None = None) -> None:
        self.table = Path(table).expanduser() if table is not None else None
        self._index_of: dict[NB201Arch, int] | None = None
        self._arch_at: list[NB201Arch] | None = None
        self._benchmarks: dict[str | None, NB201Table] = {}
        self._costs: dict[tuple, CostModel] = {}

    # --- string codec -------------------------------------------------------------------

    def encode(self, arch: NB201Arch) -> str:
        """The canonical official string, e.g. ``|nor_conv_3x3~0|+|...|+|...|``."""
        groups, k = [], 0
        for i in range(1, 4):
            groups.append("|" + "|".join(f"{arch.ops[k + j]}~{j}" for j in range(i)) + "|")
            k += i
        return "+".join(groups)

    def decode(self, text: str) -> NB201Arch:
        """Parse the official string strictly (surrounding whitespace allowed)."""
        if not isinstance(text, str):
            raise SearchkitError(f"NB201 arch string must be a str, got {type(text).__name__}; {_FORMAT}")
        s = text.strip()
        if not s:
            raise _parse_error("is empty", text)
        groups = s.split("+")
        if len(groups) != 3:
            raise _parse_error(f"has {len(groups)} node groups, expected 3 separated by '+'", text)
        ops: list[str] = []
        for i, group in enumerate(groups, start=1):
            if len(group) < 2 or not (group.startswith("|") and group.endswith("|")):
                raise _parse_error(f"has node {i} group {group!r} not enclosed in '|'", text)
            edges = group[1:-1].split("|")
            if len(edges) != i:
                raise _parse_error(f"has {len(edges)} edges into node {i}, expected {i}", text)
            for j, edge in enumerate(edges):
                op, sep, src = edge.partition("~")
                if not sep:
                    raise _parse_error(f"has edge {edge!r} into node {i}, not of the form op~j", text)
                if op not in OPS:
                    raise SearchkitError(
                        f"unknown op {op!r} in NB201 arch string {text!r}; ops are {', '.join(OPS)}"
                    )
                if src != str(j):
                    raise _parse_error(f"has edge {edge!r} into node {i} reading from node {src!r}, expected {j}", text)
                ops.append(op)
        return NB201Arch(tuple(ops))

    # --- sampling and mutation -------------------------------------------------------------

    def sample(self, rng: np.random.Generator) -> NB201Arch:
        """Uniform over all 15,625 cells."""
        return NB201Arch(tuple(OPS[i] for i in rng.integers(len(OPS), size=len(EDGES))))

    def mutate(self, arch: NB201Arch, rng: np.random.Generator) -> NB201Arch:
        """Change one uniformly chosen edge to a uniformly chosen different op."""
        edge = int(rng.integers(len(EDGES)))
        choices = [op for op in OPS if op != arch.ops[edge]]
        ops = list(arch.ops)
        ops[edge] = choices[int(rng.integers(len(choices)))]
        return NB201Arch(tuple(ops))

    def neighbours(self, arch: NB201Arch) -> list[NB201Arch]:
        """All 24 one-edge mutants, edge by edge, ops in ``OPS`` order."""
        return [
            NB201Arch(arch.ops[:k] + (op,) + arch.ops[k + 1:])
            for k in range(len(EDGES)) for op in OPS if op != arch.ops[k]
        ]

    def features(self, arch: NB201Arch) -> tuple[int, ...]:
        """The op index of every edge (edge Hamming distance = differing coordinates)."""
        return tuple(OPS.index(op) for op in arch.ops)

    # --- integer keys ------------------------------------------------------------------------

    def code(self, arch: NB201Arch) -> int:
        """Table-free key in [0, 15625): base-5 digits ``OPS.index(op)``, edge ``1<-0`` most significant.

        Not the official benchmark index (see :meth:`index`).
        """
        value = 0
        for op in arch.ops:
            value = value * len(OPS) + OPS.index(op)
        return value

    def from_code(self, code: int) -> NB201Arch:
        """Inverse of :meth:`code`."""
        if not 0 <= code < NUM_ARCHS:
            raise SearchkitError(f"NB201 code {code} out of range [0, {NUM_ARCHS})")
        digits = []
        for _ in EDGES:
            code, d = divmod(code, len(OPS))
            digits.append(OPS[d])
        return NB201Arch(tuple(reversed(digits)))

    def index(self, arch: NB201Arch) -> int:
        """The official NAS-Bench-201 index in [0, 15625), read from the benchmark table."""
        index_of, _ = self._load_table()
        if arch not in index_of:
            raise SearchkitError(f"{self.encode(arch)} is missing from the NAS-Bench-201 table {self.table}")
        return index_of[arch]

    def from_index(self, index: int) -> NB201Arch:
        """The architecture with official NAS-Bench-201 index ``index``."""
        _, arch_at = self._load_table()
        if not 0 <= index < len(arch_at):
            raise SearchkitError(f"NAS-Bench-201 index {index} out of range [0, {len(arch_at)})")
        return arch_at[index]

    def _load_table(self) -> tuple[dict[NB201Arch, int], list[NB201Arch]]:
        """Read (and cache) the ``index`` and ``arch_str`` columns of the benchmark table."""
        if self._index_of is not None and self._arch_at is not None:
            return self._index_of, self._arch_at
        self.table = require_data(self.table, TABLE_RELATIVE, "the official NAS-Bench-201 index needs the benchmark table",
                                  "pass NB201Space(table=PATH)")
        with open(self.table, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, [])
            if "index" not in header or "arch_str" not in header:
                raise SearchkitError(f"NAS-Bench-201 table {self.table} lacks the columns 'index' and 'arch_str'")
            ci, ca = header.index("index"), header.index("arch_str")
            try:
                pairs = [(int(row[ci]), self.decode(row[ca])) for row in reader]
            except (ValueError, IndexError, SearchkitError) as e:
                raise SearchkitError(f"NAS-Bench-201 table {self.table} line {reader.line_num} is malformed: {e}") from None
        pairs.sort(key=lambda pair: pair[0])
        for expected, (i, _) in enumerate(pairs):
            if i != expected:
                raise SearchkitError(
                    f"NAS-Bench-201 table {self.table} indices are not 0..{len(pairs) - 1} once each (at {i})"
                )
        self._arch_at = [arch for _, arch in pairs]
        self._index_of = {arch: i for i, arch in pairs}
        return self._index_of, self._arch_at

    # --- networks ------------------------------------------------------------------------------

    def build(self, arch: NB201Arch, num_classes: int, C: int = 16, N: int = 5, in_channels: int = 3) -> nn.Module:
        """The benchmark network for ``arch``: (m, in_channels, H, W) -> logits (m, num_classes), H, W >= 4.

        The defaults C=16, N=5 are the benchmark's; BN is affine with running statistics. Parameter
        counts equal the table's ``c10_params_mb`` except for 150 of 15,625 rows, where the
        benchmark's 200-epoch records are off by one conv op (NATS-Bench issue #36).
        """
        return NB201Network(arch, num_classes, C=C, N=N, in_channels=in_channels)

    # --- capabilities --------------------------------------------------------------------------

    def benchmark(self, path: str | Path | None = None) -> NB201Table:
        """The NAS-Bench-201 table (``path``: the CSV export or an official ``.pth`` / NATS file;
        None: the default location), loaded once per path."""
        from searchkit.tabular import NB201Table

        key = None if path is None else str(path)
        if key not in self._benchmarks:
            self._benchmarks[key] = NB201Table.load(path)
        return self._benchmarks[key]

    def cost_model(self, device: str, quantity: str = "latency", dataset: str | None = None,
                   table: str | Path | None = None, **measure: Any) -> CostModel:
        """HW-NAS-Bench's ``quantity`` on ``device`` (Li et al., ICLR 2021: edgegpu, raspi4, edgetpu,
        pixel3, eyeriss, fpga) for inputs of ``dataset``'s size (cifar10, cifar10-valid, cifar100,
        ImageNet16-120; ``table``: a CSV export or the official pickle), or ``cpu`` latency
        measured on this machine (:meth:`Space.cost_model`)."""
        from searchkit.hardware.cost import MEASURED_DEVICE, TableCost
        from searchkit.tabular.hwnas import check_device
        from searchkit.tabular.nb201 import DATA_NAMES

        if device == MEASURED_DEVICE:
            return super().cost_model(device, quantity, dataset, table, **measure)
        check_device(device, quantity)
        hw_dataset = DATA_NAMES.get(dataset or "cifar10")
        if hw_dataset is None:
            raise SearchkitError(f"HW-NAS-Bench measured inputs of cifar10, cifar100 and ImageNet16-120 size, not "
                                 f"{dataset!r}; use device: {MEASURED_DEVICE} (latency measured on this machine)")
        key = (device, quantity, hw_dataset, None if table is None else str(table))
        if key not in self._costs:
            self._costs[key] = TableCost.load(device, quantity, hw_dataset, table)
        return self._costs[key]

    def supernet(self) -> type[NB201SuperNet]:
        """NASI's supernet of this space (:class:`~searchkit.spaces.nb201_supernet.NB201SuperNet`)."""
        from searchkit.spaces.nb201_supernet import NB201SuperNet

        return NB201SuperNet
