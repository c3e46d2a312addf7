"""The NAS-Bench-201 search space (Dong & Yang, "NAS-Bench-201: Extending the Scope of
Reproducible Neural Architecture Search", ICLR 2020).

A cell is a DAG on 4 nodes; each of its 6 edges ``i <- j`` (j < i) carries one of 5 ops, so the
space has 5^6 = 15,625 cells. Node 0 is the cell input, node i = sum_{j<i} op_{i<-j}(node j),
and node 3 is the output. The official string lists the edges node by node:
``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``.

Many strings compute the same function (dead edges, identities, linear pooling): the module's last
section defines the equivalence (:func:`cell_expression`, :func:`canonical`) and degenerate cells
(:func:`is_degenerate`), and :class:`NB201Space` can sample without them. The ops, edges,
:class:`NB201Arch` and the network are :mod:`searchkit.spaces.nb201_network` (imported here).
"""
from __future__ import annotations

import csv
import itertools
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn

from searchkit.errors import SearchkitError
from searchkit.hardware.cost_models import MEASURED_DEVICE, CostModel, TableCost
from searchkit.paths import require_data
from searchkit.spaces.base import SPACES, BaseSpace
from searchkit.spaces.nb201_network import EDGES, OPS, NB201Arch, NB201Network

if TYPE_CHECKING:
    from searchkit.spaces.nb201_supernet import NB201SuperNet
    from searchkit.tabular import NB201Table

NUM_ARCHS = len(OPS) ** len(EDGES)
TABLE_RELATIVE = "nb201/nb201_table.csv"
_FORMAT = "the format is |op~0|+|op~0|op~1|+|op~0|op~1|op~2| with ops " + ", ".join(OPS)


def _parse_error(problem: str, text: str) -> SearchkitError:
    return SearchkitError(f"NB201 arch string {text!r} {problem}; {_FORMAT}")


@SPACES.register("nb201")
class NB201Space(BaseSpace):
    """The NAS-Bench-201 space: strict string codec, sampling, mutation, official indices, networks,
    and its capabilities: the benchmark table (:meth:`benchmark`), NASI's supernet and
    HW-NAS-Bench's hardware costs (:meth:`cost_model`).

    ``table``: the benchmark table CSV (columns ``index``, ``arch_str``) that defines the official
    index order; by default found as ``nb201/nb201_table.csv`` under :func:`searchkit.paths.find_data`.
    It is read once, on the first :meth:`index`/:meth:`from_index` call.

    Sampling options (both off by default; see "Cell equivalence" at the end of this module):
    ``exclude_degenerate``: :meth:`sample` and :meth:`mutate` never return a degenerate cell (no
    convolution on any input-output path, :func:`is_degenerate`); ``distinct``: they return the
    representative of an equivalence class (:func:`canonical`), :meth:`sample` uniformly over the
    classes and :meth:`mutate` always into another class, so that no two draws differ only in
    dead edges or in the order of a sum.
    """

    name = "nb201"
    default_dataset = "digits"  # embedded: the quick start runs with no files
    #: A search (searchkit.spaces.search_space) leaves degenerate cells out unless its
    #: ``space.options`` say otherwise: a cell with no convolution on any input-output path (e.g.
    #: the identity) scores well on some metrics and trains to little. The benchmark searches all
    #: 15,625 cells, as the papers it compares with do.
    search_defaults = {"exclude_degenerate": True}

    def __init__(
        self, table: str | Path | None = None, exclude_degenerate: bool = False, distinct: bool = False
    ) -> None:
        self.table = Path(table).expanduser() if table is not None else None
        self.exclude_degenerate = bool(exclude_degenerate)
        self.distinct = bool(distinct)
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
        """Uniform over all 15,625 cells (with ``distinct``: over the equivalence classes; with
        ``exclude_degenerate``: over the non-degenerate cells or classes)."""
        if self.distinct or self.exclude_degenerate:
            return self._sample_filtered(rng)
        return NB201Arch(tuple(OPS[i] for i in rng.integers(len(OPS), size=len(EDGES))))

    def mutate(self, arch: NB201Arch, rng: np.random.Generator) -> NB201Arch:
        """Change one uniformly chosen edge to a uniformly chosen different op (with the sampling
        options: a uniformly chosen one of the :meth:`neighbours` they allow, see
        :meth:`_mutate_filtered`)."""
        if self.distinct or self.exclude_degenerate:
            return self._mutate_filtered(arch, rng)
        edge = int(rng.integers(len(EDGES)))
        choices = [op for op in OPS if op != arch.ops[edge]]
        ops = list(arch.ops)
        ops[edge] = choices[int(rng.integers(len(choices)))]
        return NB201Arch(tuple(ops))

    def neighbours(self, arch: NB201Arch) -> list[NB201Arch]:
        """All one-edge mutants, edge by edge, ops in ``OPS`` order: the 24 of them, or with the
        sampling options those :meth:`mutate` may return (distinct ones, as class representatives)."""
        mutants = [NB201Arch(arch.ops[:k] + (op,) + arch.ops[k + 1:])
                   for k in range(len(EDGES)) for op in OPS if op != arch.ops[k]]
        if not (self.distinct or self.exclude_degenerate):
            return mutants
        key = cell_expression(arch)
        allowed = [n for n in mutants if self._allowed(n) and not (self.distinct and cell_expression(n) == key)]
        return list(dict.fromkeys(canonical(n) for n in allowed)) if self.distinct else allowed

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
        measured on this machine (:meth:`BaseSpace.cost_model`)."""
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

    # --- cell equivalence: sampling options and queries (see the module's last section) --------

    def is_degenerate(self, arch: NB201Arch) -> bool:
        """Whether ``arch`` has no convolution on any input-output path (:func:`is_degenerate`)."""
        return is_degenerate(arch)

    def canonical(self, arch: NB201Arch) -> NB201Arch:
        """The representative of ``arch``'s equivalence class (:func:`canonical`)."""
        return canonical(arch)

    def allows(self, arch: NB201Arch) -> bool:
        """Whether :meth:`sample` and :meth:`mutate` may return ``arch`` under the sampling options
        (not degenerate with ``exclude_degenerate``; its class representative with ``distinct``).
        A space restricted to a hardware budget (:class:`~searchkit.spaces.constrained.FeasibleSpace`)
        keeps to these."""
        return self._allowed(arch) and (not self.distinct or canonical(arch) == arch)

    def _allowed(self, arch: NB201Arch) -> bool:
        return not (self.exclude_degenerate and is_degenerate(arch))

    def _sample_filtered(self, rng: np.random.Generator) -> NB201Arch:
        """One draw (a single ``rng.integers`` call) from the cells, or with ``distinct`` the class
        representatives, that the sampling options allow."""
        pool = _sampling_pool(self.distinct, self.exclude_degenerate)
        return pool[int(rng.integers(len(pool)))]

    def _mutate_filtered(self, arch: NB201Arch, rng: np.random.Generator) -> NB201Arch:
        """A uniformly chosen one-edge mutant that the options allow: never degenerate with
        ``exclude_degenerate``; with ``distinct``, one of another equivalence class than ``arch``,
        returned as its class representative. Every cell has such a mutant (setting edge 3<-0 to a
        convolution other than its op adds a convolution term to the output)."""
        options = self.neighbours(arch)
        return options[int(rng.integers(len(options)))]


# --- cell equivalence: dead edges, isomorphic and degenerate cells ------------------------------
#
# A cell computes node 3 as a sum of terms; op(node) for each edge. Three facts make different
# strings compute the same parametrised function:
#  1. a node that node 0 cannot reach through non-``none`` edges is zero, so every edge out of it
#     contributes nothing, and a node that cannot reach node 3 is never used: an edge that lies on
#     no path 0 -> 3 of non-``none`` edges is *dead* and may be replaced by ``none`` (:func:`prune`);
#  2. ``skip_connect`` is the identity, and sums are associative and commutative, so only the
#     multiset of terms reaching node 3 matters;
#  3. ``avg_pool_3x3`` (stride 1, padding 1, ``count_include_pad=False``) is linear:
#     pool(a + b) = pool(a) + pool(b).
# :func:`cell_expression` writes node 3 as the sorted sum of its terms after applying all three;
# two cells are *equivalent* when their expressions are equal. Equivalent cells are the same
# family of functions with the same parameter shapes on the used paths and the same initialisation
# distribution, with one approximation in fact 1: a convolution edge fed only zeros outputs its
# BatchNorm's bias beta (affine BN: BN(0) = beta), a learnable per-channel constant that the
# expression ignores. Dead edges still hold parameters, so parameter counts and FLOPs differ
# within a class while accuracies agree up to training noise (the benchmark trained every cell
# separately). NAS-Bench-201's fixed node order admits no other relabelling: nodes 1 and 2 are
# not interchangeable, since node 2 reads node 1.
#
# Counts over all 15,625 cells (pinned by tests/test_nb201_canonical.py): 4,660 classes; 9,445
# cells without a dead edge (exactly the cells NAS-Bench-Suite-Zero scores); 1,983 degenerate
# cells in 48 classes, 341 of them with output zero. NATS-Bench (Dong et al., TPAMI 2021, Table 1,
# "6.5k unique") identifies cells by a string that keeps one zero term per ``none`` input and does
# not use fact 3; that gives 6,466 classes, each inside one of ours. Within our classes the
# benchmark's CIFAR-10 test accuracies have a median SD of 0.15 points (its seed-to-seed SD is
# 0.16), against a median gap of 3.1 points between random cells.

PARAMETRISED_OPS = frozenset({"nor_conv_1x1", "nor_conv_3x3"})
"""The ops with weights (ReLU-conv-BN); ``skip_connect``, ``avg_pool_3x3`` and ``none`` have none."""
_TERM = {"nor_conv_1x1": "conv1x1", "nor_conv_3x3": "conv3x3", "avg_pool_3x3": "pool"}


def live_edges(arch: NB201Arch) -> tuple[bool, ...]:
    """For each edge of ``EDGES``: whether it lies on a path from node 0 to node 3 whose edges are
    all non-``none`` (a *live* edge; the others are dead and do not change the cell's function)."""
    reached = [True, False, False, False]  # from node 0; EDGES is sorted by target node
    for (i, j), op in zip(EDGES, arch.ops):
        reached[i] = reached[i] or (op != "none" and reached[j])
    reaches = [False, False, False, True]  # node 3; reversed EDGES is sorted by source, descending
    for (i, j), op in reversed(list(zip(EDGES, arch.ops))):
        reaches[j] = reaches[j] or (op != "none" and reaches[i])
    return tuple(op != "none" and reached[j] and reaches[i] for (i, j), op in zip(EDGES, arch.ops))


def prune(arch: NB201Arch) -> NB201Arch:
    """``arch`` with every dead edge (see :func:`live_edges`) replaced by ``none``."""
    return NB201Arch(tuple(op if live else "none" for op, live in zip(arch.ops, live_edges(arch))))


def is_degenerate(arch: NB201Arch) -> bool:
    """True when no live edge carries a convolution: the cell's output is zero (no live edge at
    all) or a parameter-free function of its input (sums of identities and 3x3 average pools,
    e.g. ``|none~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|skip_connect~0|none~1|none~2|``, whose
    convolutions all sit on dead edges, computes the identity)."""
    return not any(live and op in PARAMETRISED_OPS for op, live in zip(arch.ops, live_edges(arch)))


def cell_expression(arch: NB201Arch) -> str:
    """Node 3 of ``arch`` as a canonical sum of terms, e.g. ``conv3x3(x)+pool(x)+x``; ``0`` for a
    cell whose output is zero. ``x`` is the cell input; equal expressions mean equivalent cells
    (the three facts in this section's header comment)."""
    nodes: list[tuple[str, ...]] = [("x",)]
    k = 0
    for i in range(1, 4):
        terms: list[str] = []
        for j in range(i):
            op, source = arch.ops[k + j], nodes[j]
            if op == "none" or not source:
                continue
            if op == "skip_connect":
                terms += source
            elif op == "avg_pool_3x3":
                terms += [f"pool({t})" for t in source]
            else:
                terms.append(f"{_TERM[op]}({'+'.join(source)})")
        nodes.append(tuple(sorted(terms)))
        k += i
    return "+".join(nodes[3]) or "0"


def canonical(arch: NB201Arch) -> NB201Arch:
    """The representative of ``arch``'s equivalence class: its member with the fewest non-``none``
    edges, ties broken by the smallest :meth:`NB201Space.code` (so it has no dead edge)."""
    return _classes()[cell_expression(arch)][0]


def equivalence_classes() -> dict[str, tuple[NB201Arch, ...]]:
    """Expression -> the cells computing it, representative first, then in code order; covers all
    15,625 cells (computed once per process, a fraction of a second)."""
    return dict(_classes())


@lru_cache(maxsize=1)
def _all_cells() -> tuple[NB201Arch, ...]:
    """All cells in :meth:`NB201Space.code` order (edge 1<-0 most significant)."""
    return tuple(NB201Arch(ops) for ops in itertools.product(OPS, repeat=len(EDGES)))


@lru_cache(maxsize=1)
def _classes() -> dict[str, tuple[NB201Arch, ...]]:
    members: dict[str, list[NB201Arch]] = {}
    for arch in _all_cells():
        members.setdefault(cell_expression(arch), []).append(arch)
    classes = {}
    for key, cells in members.items():
        rep = min(cells, key=lambda a: sum(op != "none" for op in a.ops))  # first minimum: lowest code
        classes[key] = (rep, *(a for a in cells if a is not rep))
    return classes


@lru_cache(maxsize=4)
def _sampling_pool(distinct: bool, exclude_degenerate: bool) -> tuple[NB201Arch, ...]:
    """What :meth:`NB201Space.sample` draws from under its options, in code order: every cell, or
    (``distinct``) one representative per class; without the degenerate ones if asked."""
    cells = _all_cells()
    if distinct:
        representatives = {members[0] for members in _classes().values()}
        cells = tuple(a for a in cells if a in representatives)
    return tuple(a for a in cells if not is_degenerate(a)) if exclude_degenerate else cells
