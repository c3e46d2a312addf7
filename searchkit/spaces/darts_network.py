"""DARTS genotypes and networks (Liu, Simonyan & Yang, "DARTS: Differentiable Architecture
Search", ICLR 2019, Sec. 2.1 and 3.1; NASI's discrete form, Shu et al. ICLR 2022, appendix B.2):
the ops, :class:`DartsGenotype` and its text parser, the cells and the evaluation network. The
space (:mod:`searchkit.spaces.darts`, whose docstring describes the cell) and its supernet
(:mod:`searchkit.spaces.darts_supernet`) both build on this module, which imports neither.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from searchkit.errors import SearchkitError
from searchkit.spaces.darts_ops import OP_FACTORIES, FactorizedReduce, drop_path
from searchkit.spaces.ops import ReLUConvBN

OPS: tuple[str, ...] = (
    "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5",
)
"""The ops sampling and mutation use: DARTS' candidate set without ``none`` (NASI B.2)."""
DECODE_OPS: tuple[str, ...] = OPS + ("none",)
"""The ops a decoded genotype may use."""
NODES = 4
"""Intermediate nodes per cell (2..5); each has two (op, input) pairs."""
CONCAT: tuple[int, ...] = (2, 3, 4, 5)
"""The concatenated nodes of sampled cells: all intermediate nodes."""
CELLS: tuple[str, ...] = ("normal", "reduce")
GENOTYPES_RELATIVE = "darts/genotypes.json"
_FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")
_FORMAT = ("write Genotype(normal=[('sep_conv_3x3', 0), ...8 pairs], normal_concat=[2, 3, 4, 5], "
           "reduce=[...8 pairs], reduce_concat=[2, 3, 4, 5]), its JSON object, or a published name like DARTS_V2")

Pair = tuple[str, int]


def _cell_problem(pairs: Any, concat: Any) -> str | None:
    """What is wrong with one cell's pairs and concat, or None if it is valid."""
    if not isinstance(pairs, tuple) or len(pairs) != 2 * NODES:
        n = len(pairs) if isinstance(pairs, (tuple, list)) else type(pairs).__name__
        return f"has {n} (op, input) pairs, expected {2 * NODES} (two per intermediate node 2..{NODES + 1})"
    for k, pair in enumerate(pairs):
        node = 2 + k // 2
        if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], str)
                and isinstance(pair[1], int) and not isinstance(pair[1], bool)):
            return f"pair {k} (node {node}) is {pair!r}, not an (op, input) pair like ('sep_conv_3x3', 0)"
        op, source = pair
        if op not in DECODE_OPS:
            return f"pair {k} (node {node}) has unknown op {op!r}; DARTS ops are {', '.join(DECODE_OPS)}"
        if not 0 <= source < node:
            return f"pair {k} has input {source} out of range for node {node}, which reads nodes 0..{node - 1}"
    if not (isinstance(concat, tuple) and concat and all(isinstance(i, int) and not isinstance(i, bool) for i in concat)
            and list(concat) == sorted(set(concat)) and concat[0] >= 2 and concat[-1] <= NODES + 1):
        return (f"has concat {concat!r}; expected increasing distinct intermediate nodes in 2..{NODES + 1}, "
                "e.g. [2, 3, 4, 5]")
    return None


@dataclass(frozen=True)
class DartsGenotype:
    """A DARTS architecture: normal and reduction cell, each 8 (op, input) pairs and a concat.

    Pair k of a cell is one of the two inputs of intermediate node 2 + k // 2: ``op`` applied to
    node ``input`` in 0..(2 + k // 2 - 1); 0 and 1 are the outputs of the two previous cells.
    Hashable; invalid values raise :class:`SearchkitError`.
    """

    normal: tuple[Pair, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Pair, ...]
    reduce_concat: tuple[int, ...]

    def __post_init__(self) -> None:
        for cell in CELLS:
            problem = _cell_problem(getattr(self, cell), getattr(self, cell + "_concat"))
            if problem:
                raise SearchkitError(f"DARTS genotype: the {cell} cell {problem}")

    @classmethod
    def from_dict(cls, data: dict) -> DartsGenotype:
        """From ``{"normal": [[op, input], ...], "normal_concat": [...], "reduce": ..., "reduce_concat": ...}``
        (the JSON form of ``genotypes.json``, whose optional ``"source"`` note is ignored; pairs may
        be lists or tuples)."""
        if not isinstance(data, dict) or set(data) - {"source"} != set(_FIELDS):
            got = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise SearchkitError(f"a DARTS genotype needs exactly the fields {', '.join(_FIELDS)}; got {got}")
        values = {}
        for cell in CELLS:
            pairs, concat = data[cell], data[cell + "_concat"]
            if not isinstance(pairs, (list, tuple)) or not isinstance(concat, (list, tuple)):
                raise SearchkitError(f"DARTS genotype: {cell} and {cell}_concat must be lists; {_FORMAT}")
            values[cell] = tuple(tuple(p) if isinstance(p, (list, tuple)) else p for p in pairs)
            values[cell + "_concat"] = tuple(concat)
        return cls(**values)

    def to_dict(self) -> dict:
        """The JSON form (lists), inverse of :meth:`from_dict`."""
        return {f: [list(p) for p in getattr(self, f)] if f in CELLS else list(getattr(self, f)) for f in _FIELDS}


# --- the Genotype(...) text ------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""(?P<int>-?\d+)|(?P<name>[A-Za-z_]\w*)|'(?P<sq>[^'\n]*)'|"(?P<dq>[^"\n]*)"|(?P<sym>[()\[\],=])"""
)
_CLOSE = {"(": ")", "[": "]"}


class _GenotypeParser:
    """Recursive-descent parser (no ``eval``) for ``Genotype(name=value, ...)`` where a value is an
    int, a quoted string, a list or tuple of values, or ``range(a, b)`` (as DARTS' search prints
    concat). Returns the keyword fields as nested Python lists."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, Any, int]] = []
        pos = 0
        while True:
            while pos < len(text) and text[pos].isspace():
                pos += 1
            if pos == len(text):
                break
            match = _TOKEN.match(text, pos)
            if match is None:
                raise self._error(f"unexpected character {text[pos]!r} at position {pos}")
            kind = match.lastgroup
            value: Any = match.group(kind)
            if kind == "int":
                value = int(value)
            elif kind in ("sq", "dq"):
                kind = "str"
            self.tokens.append((kind, value, pos))
            pos = match.end()
        self.i = 0

    def _error(self, problem: str) -> SearchkitError:
        return SearchkitError(f"cannot parse DARTS genotype text: {problem}; {_FORMAT}")

    def _peek(self) -> tuple[str, Any, int]:
        return self.tokens[self.i] if self.i < len(self.tokens) else ("end", None, len(self.text))

    def _at(self, symbol: str) -> bool:
        kind, value, _ = self._peek()
        return kind == "sym" and value == symbol

    def _expect(self, kind: str, value: Any = None) -> Any:
        got_kind, got, pos = self._peek()
        if got_kind != kind or (value is not None and got != value):
            found = "the end" if got_kind == "end" else repr(got)
            raise self._error(f"expected {value if value is not None else kind!r} at position {pos}, found {found}")
        self.i += 1
        return got

    def _value(self) -> Any:
        kind, value, pos = self._peek()
        if kind in ("int", "str"):
            self.i += 1
            return value
        if kind == "name" and value == "range":
            self.i += 1
            self._expect("sym", "(")
            start = self._expect("int")
            self._expect("sym", ",")
            stop = self._expect("int")
            self._expect("sym", ")")
            return list(range(start, stop))
        if kind == "sym" and value in _CLOSE:
            self.i += 1
            items = []
            while not self._at(_CLOSE[value]):
                items.append(self._value())
                if not self._at(_CLOSE[value]):
                    self._expect("sym", ",")
            self.i += 1
            return items
        raise self._error(f"unexpected {'the end' if kind == 'end' else repr(value)} at position {pos}")

    def parse(self) -> dict[str, Any]:
        self._expect("name", "Genotype")
        self._expect("sym", "(")
        fields: dict[str, Any] = {}
        while not self._at(")"):
            pos = self._peek()[2]
            name = self._expect("name")
            if name in fields:
                raise self._error(f"field {name!r} is given twice (position {pos})")
            self._expect("sym", "=")
            fields[name] = self._value()
            if not self._at(")"):
                self._expect("sym", ",")
        self.i += 1
        self._expect("end")
        return fields


# --- networks ----------------------------------------------------------------------------------


class CellInputs(nn.Module):
    """A cell's two input nodes with C channels each (DARTS' preprocessing): (s0 (m, c_prev_prev,
    H0, W0), s1 (m, c_prev, H, W)) -> [node 0, node 1], both (m, C, H, W).

    s1 -> ReLUConvBN(1x1); s0 -> FactorizedReduce when the previous cell reduced (so H0 = 2H),
    else ReLUConvBN(1x1).
    """

    def __init__(self, c_prev_prev: int, c_prev: int, C: int, reduction_prev: bool) -> None:
        super().__init__()
        self.preprocess0 = FactorizedReduce(c_prev_prev, C) if reduction_prev else ReLUConvBN(c_prev_prev, C, 1)
        self.preprocess1 = ReLUConvBN(c_prev, C, 1)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> list[torch.Tensor]:
        return [self.preprocess0(s0), self.preprocess1(s1)]


def op_stride(reduction: bool, source: int) -> int:
    """Stride of an op reading node ``source``: 2 on the input nodes 0, 1 of a reduction cell, else 1."""
    return 2 if reduction and source < 2 else 1


class DartsCell(CellInputs):
    """One cell with C channels per node: (s0 (m, c_prev_prev, H0, W0), s1 (m, c_prev, H, W)) ->
    (m, len(concat) * C, H', W'), H' = H / 2 in a reduction cell, else H.

    Inputs as :class:`CellInputs`. In a reduction cell the ops on nodes 0 and 1 have stride 2
    (``skip_connect`` becomes a FactorizedReduce).
    """

    def __init__(self, pairs: tuple[Pair, ...], concat: tuple[int, ...], c_prev_prev: int, c_prev: int, C: int,
                 reduction: bool, reduction_prev: bool) -> None:
        super().__init__(c_prev_prev, c_prev, C, reduction_prev)
        self.ops = nn.ModuleList(OP_FACTORIES[op](C, op_stride(reduction, j)) for op, j in pairs)
        self.inputs = tuple(j for _, j in pairs)
        self.concat = concat
        self.out_channels = len(concat) * C

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        """``drop_prob`` > 0: drop path on each non-identity op's output (the caller passes 0 in eval)."""
        states = super().forward(s0, s1)
        for k in range(0, len(self.ops), 2):
            states.append(self._edge(k, states, drop_prob) + self._edge(k + 1, states, drop_prob))
        return torch.cat([states[i] for i in self.concat], dim=1)

    def _edge(self, k: int, states: list[torch.Tensor], drop_prob: float) -> torch.Tensor:
        """Pair k's op applied to its input node, drop path included."""
        op = self.ops[k]
        h = op(states[self.inputs[k]])
        return drop_path(h, drop_prob) if drop_prob > 0 and not isinstance(op, nn.Identity) else h


class AuxiliaryHeadCIFAR(nn.Module):
    """DARTS' auxiliary classifier for CIFAR (from NASNet): x (m, C, 8, 8) -> logits (m, num_classes).

    ReLU, AvgPool2d(5, stride 3) to 2x2, Conv1x1 (128) + BN + ReLU, Conv2x2 (768) + BN + ReLU,
    Linear(768). Designed for the 8x8 features at 2/3 depth of a 32x32 input; it accepts 8..10 px.
    """

    def __init__(self, C: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(), nn.AvgPool2d(5, stride=3, count_include_pad=False),
            nn.Conv2d(C, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(),
            nn.Conv2d(128, 768, 2, bias=False), nn.BatchNorm2d(768), nn.ReLU(),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if not (8 <= h <= 10 and 8 <= w <= 10):
            raise SearchkitError(
                f"the DARTS auxiliary head needs 8x8 features at 2/3 depth (32x32 inputs), got {h}x{w}; "
                "use 32x32 images (e.g. --dataset cifar10) or build the network with auxiliary=False"
            )
        return self.classifier(self.features(x).flatten(1))


def reduction_layers(layers: int) -> set[int]:
    """The indices of the reduction cells among ``layers`` cells: layers // 3 and 2 * layers // 3."""
    return {layers // 3, 2 * layers // 3}


def darts_skeleton(make_cell: Callable[[str, int, int, int, bool], nn.Module], num_classes: int, in_channels: int,
                   C: int, layers: int, stem_multiplier: int) -> tuple[nn.Module, nn.ModuleList, nn.Module, nn.Module]:
    """DARTS' macro network around its cells, shared by the evaluation network and NASI's supernet:
    (stem, cells, pool, classifier).

    Stem Conv3x3(in_channels -> stem_multiplier * C, no bias) + BN; ``layers`` cells, those at
    :func:`reduction_layers` of cell type "reduce" with doubled C; ``make_cell(cell_type,
    c_prev_prev, c_prev, C, reduction_prev)`` builds each and must give it ``out_channels``; global
    average pooling and a linear classifier on the last cell's output.
    """
    for key, value in (("C", C), ("layers", layers), ("stem_multiplier", stem_multiplier),
                       ("num_classes", num_classes), ("in_channels", in_channels)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise SearchkitError(f"DARTS network option {key} must be a positive integer, got {value!r}")
    c_stem = stem_multiplier * C
    stem = nn.Sequential(nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
    reductions = reduction_layers(layers)
    c_prev_prev, c_prev, c = c_stem, c_stem, C
    cells, reduction_prev = [], False
    for i in range(layers):
        reduction = i in reductions
        c = 2 * c if reduction else c
        cell = make_cell("reduce" if reduction else "normal", c_prev_prev, c_prev, c, reduction_prev)
        cells.append(cell)
        c_prev_prev, c_prev, reduction_prev = c_prev, cell.out_channels, reduction
    return stem, nn.ModuleList(cells), nn.AdaptiveAvgPool2d(1), nn.Linear(c_prev, num_classes)


class DartsNetwork(nn.Module):
    """DARTS' evaluation network ("NetworkCIFAR"): x (m, in_channels, H, W) -> logits (m, num_classes).

    Stem Conv3x3(in_channels -> stem_multiplier * C, no bias) + BN; ``layers`` cells, the ones at
    layers // 3 and 2 * layers // 3 reduction cells that double the channels (C, 2C, 4C per node);
    global average pooling and a linear classifier (no final BN/ReLU, as in DARTS).

    Training-time extras, both off by default so that training-free metrics always get a Tensor:
      * ``drop_path_prob``: drop path on every non-identity op in training mode (a trainer updates
        it per epoch; DARTS raises it linearly to 0.2);
      * ``return_aux``: with an auxiliary head (``auxiliary=True``), training-mode forward returns
        ``(logits, aux_logits)``, aux from the output of cell 2 * layers // 3. Eval mode always
        returns logits only. A trainer that adds the auxiliary loss sets it.
    """

    def __init__(self, genotype: DartsGenotype, num_classes: int, in_channels: int = 3, C: int = 16,
                 layers: int = 8, auxiliary: bool = False, drop_path: float = 0.0, stem_multiplier: int = 3) -> None:
        super().__init__()
        if not 0.0 <= drop_path <= 1.0:
            raise SearchkitError(f"DARTS network option drop_path must be in [0, 1], got {drop_path!r}")

        def cell(cell_type: str, c_prev_prev: int, c_prev: int, c: int, reduction_prev: bool) -> DartsCell:
            return DartsCell(getattr(genotype, cell_type), getattr(genotype, cell_type + "_concat"),
                             c_prev_prev, c_prev, c, cell_type == "reduce", reduction_prev)

        self.stem, self.cells, self.pool, self.classifier = darts_skeleton(
            cell, num_classes, in_channels, C, layers, stem_multiplier)
        self.aux_index = 2 * layers // 3
        self.auxiliary_head = (AuxiliaryHeadCIFAR(self.cells[self.aux_index].out_channels, num_classes)
                               if auxiliary else None)
        self.drop_path_prob = float(drop_path)
        self.return_aux = False

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        drop_prob = self.drop_path_prob if self.training else 0.0
        want_aux = self.training and self.return_aux and self.auxiliary_head is not None
        s0 = s1 = self.stem(x)
        aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, drop_prob)
            if want_aux and i == self.aux_index:
                aux = self.auxiliary_head(s1)
        logits = self.classifier(self.pool(s1).flatten(1))
        return logits if aux is None else (logits, aux)


# --- the space -----------------------------------------------------------------------------------
