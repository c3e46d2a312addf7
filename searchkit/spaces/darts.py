"""The DARTS search space (Liu, Simonyan & Yang, "DARTS: Differentiable Architecture Search",
ICLR 2019, Sec. 2.1 and 3.1) in NASI's discrete form (Shu et al., "NASI: Label- and Data-agnostic
Neural Architecture Search at Initialization", ICLR 2022, appendix B.2).

A network stacks cells of two kinds, one *normal* and one *reduction* cell. A cell has two
input nodes (0, 1: the outputs of the two previous cells) and four intermediate nodes 2..5; node
i sums two ops, each applied to one of the nodes 0..i-1, and the cell outputs the channel
concatenation of the ``concat`` nodes (2, 3, 4, 5). Following NASI B.2, the op set has no
``none`` (it is never selected in DARTS) and a node's two inputs are chosen independently of
its ops, as two distinct earlier nodes. ``none`` and a node that reads one earlier node twice are
still accepted when decoding, for published and benchmark cells that use them (811 of the 1,000
trained cells of :mod:`searchkit.tabular.darts` read a node twice; the DARTS network computes
them as written); sampling never produces either, and mutation never introduces them.

A genotype is written as in the DARTS code,
``Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5], reduce=[...],
reduce_concat=[2, 3, 4, 5])``: pair k of a cell is (op, input) of node 2 + k // 2. The ops,
genotype, parser and networks are :mod:`searchkit.spaces.darts_network` (imported here).
"""
from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np
from torch import nn

from searchkit.errors import SearchkitError
from searchkit.paths import require_data
from searchkit.spaces.base import SPACES, BaseSpace
from searchkit.spaces.darts_network import (_FORMAT, CELLS, CONCAT, DECODE_OPS, GENOTYPES_RELATIVE, NODES, OPS,
                                            DartsGenotype, DartsNetwork, Pair, _GenotypeParser)

if TYPE_CHECKING:
    from searchkit.spaces.darts_supernet import DartsSuperNet
    from searchkit.tabular.darts import DartsTable


@SPACES.register("darts")
class DartsSpace(BaseSpace):
    """The DARTS space: strict text/JSON/name codec, sampling, mutation and networks.

    ``genotypes``: the published-genotypes JSON (``{name: {"normal": ..., ...}}``) that names in
    :meth:`decode` refer to; by default ``darts/genotypes.json`` under
    :func:`searchkit.paths.find_data`. Read once, on the first name lookup.
    """

    name = "darts"
    default_dataset = "cifar10"  # the network (auxiliary head) and protocols assume 32x32 inputs

    def __init__(self, genotypes: str | Path | None = None) -> None:
        self.genotypes = Path(genotypes).expanduser() if genotypes is not None else None
        self._published: dict[str, DartsGenotype] | None = None
        self._tables: dict[str | None, DartsTable] = {}

    # --- codec ---------------------------------------------------------------------------------

    def encode(self, arch: DartsGenotype) -> str:
        """The canonical ``Genotype(normal=[('op', j), ...], normal_concat=[...], reduce=..., reduce_concat=...)``."""
        def pairs(cell: tuple[Pair, ...]) -> str:
            return "[" + ", ".join(f"('{op}', {j})" for op, j in cell) + "]"

        def ints(concat: tuple[int, ...]) -> str:
            return "[" + ", ".join(map(str, concat)) + "]"

        return (f"Genotype(normal={pairs(arch.normal)}, normal_concat={ints(arch.normal_concat)}, "
                f"reduce={pairs(arch.reduce)}, reduce_concat={ints(arch.reduce_concat)})")

    def decode(self, text: str) -> DartsGenotype:
        """Parse strictly: ``Genotype(...)`` text (quotes ' or ", lists or tuples, ``range(a, b)``
        concat), a JSON object as in ``genotypes.json``, or a published name such as ``DARTS_V2``."""
        if not isinstance(text, str):
            raise SearchkitError(f"a DARTS genotype must be given as a str, got {type(text).__name__}; {_FORMAT}")
        s = text.strip()
        if not s:
            raise SearchkitError(f"the DARTS genotype text is empty; {_FORMAT}")
        if re.fullmatch(r"[A-Za-z_]\w*", s):
            return self.named(s)
        if s.startswith("{"):
            try:
                data = json.loads(s)
            except json.JSONDecodeError as err:
                raise SearchkitError(f"DARTS genotype JSON is invalid: {err}; {_FORMAT}") from None
            return DartsGenotype.from_dict(data)
        return DartsGenotype.from_dict(_GenotypeParser(s).parse())

    def named(self, name: str) -> DartsGenotype:
        """A published genotype by name (see :meth:`published`)."""
        published = self.published()
        if name not in published:
            raise SearchkitError(
                f"unknown DARTS genotype name {name!r}; known names: {', '.join(published)} (from {self.genotypes}); "
                "or give the Genotype(normal=[...], ...) text"
            )
        return published[name]

    def published(self) -> dict[str, DartsGenotype]:
        """Name -> genotype from the published-genotypes JSON, in file order."""
        if self._published is not None:
            return self._published
        self.genotypes = require_data(self.genotypes, GENOTYPES_RELATIVE, "DARTS genotype names need",
                                      "give the Genotype(...) text instead, pass DartsSpace(genotypes=PATH),")
        try:
            entries = json.loads(self.genotypes.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise SearchkitError(f"cannot read DARTS genotypes {self.genotypes}: {err}") from None
        if not isinstance(entries, dict):
            raise SearchkitError(f"DARTS genotypes {self.genotypes} must hold a JSON object of name -> genotype")
        published = {}
        for name, entry in entries.items():
            try:
                published[name] = DartsGenotype.from_dict(entry)
            except SearchkitError as err:
                raise SearchkitError(f"DARTS genotypes {self.genotypes}, entry {name!r}: {err}") from None
        self._published = published
        return published

    # --- sampling and mutation -------------------------------------------------------------------

    def sample(self, rng: np.random.Generator) -> DartsGenotype:
        """Per cell and node: two distinct inputs uniform among the earlier nodes (drawn in random
        order), two ops uniform and independent over :data:`OPS`; concat 2..5."""
        def cell() -> tuple[Pair, ...]:
            pairs: list[Pair] = []
            for node in range(2, 2 + NODES):
                inputs = rng.choice(node, size=2, replace=False)
                ops = rng.integers(len(OPS), size=2)
                pairs += [(OPS[o], int(j)) for o, j in zip(ops, inputs)]
            return tuple(pairs)

        return DartsGenotype(cell(), CONCAT, cell(), CONCAT)

    def _changes(self, arch: DartsGenotype) -> Iterator[tuple[str, int, Pair]]:
        """Every single change ``(cell, pair index, new pair)``: one op to another of :data:`OPS`,
        or one input to another earlier node that is not the node's other input."""
        for cell in CELLS:
            pairs = getattr(arch, cell)
            for k, (op, j) in enumerate(pairs):
                yield from ((cell, k, (new, j)) for new in OPS if new != op)
                other = pairs[k ^ 1][1]
                yield from ((cell, k, (op, new)) for new in range(2 + k // 2) if new not in (j, other))

    @staticmethod
    def _apply(arch: DartsGenotype, change: tuple[str, int, Pair]) -> DartsGenotype:
        cell, k, pair = change
        pairs = getattr(arch, cell)
        return replace(arch, **{cell: pairs[:k] + (pair,) + pairs[k + 1:]})

    def mutate(self, arch: DartsGenotype, rng: np.random.Generator) -> DartsGenotype:
        """One uniformly chosen neighbour (see :meth:`neighbours`): one op or one input of one node
        in one cell changes; of the 120 neighbours of a genotype without ``none``, 96 change an op."""
        changes = list(self._changes(arch))
        return self._apply(arch, changes[int(rng.integers(len(changes)))])

    def neighbours(self, arch: DartsGenotype) -> list[DartsGenotype]:
        """All genotypes one change away: per cell, 8 pairs x 6 other ops, plus 2 x (0 + 1 + 2 + 3)
        other inputs (node i's pair may move to any of its other i - 2 allowed inputs)."""
        return [self._apply(arch, change) for change in self._changes(arch)]

    def features(self, arch: DartsGenotype) -> tuple[int, ...]:
        """(op index, input) of every pair of the normal then the reduction cell."""
        return tuple(v for cell in CELLS for op, j in getattr(arch, cell) for v in (DECODE_OPS.index(op), j))

    # --- networks ------------------------------------------------------------------------------------

    def build(self, arch: DartsGenotype, num_classes: int, in_channels: int = 3, C: int = 16, layers: int = 5,
              auxiliary: bool = False, drop_path: float = 0.0, stem_multiplier: int = 3) -> nn.Module:
        """The DARTS evaluation network for ``arch`` (:class:`DartsNetwork`): (m, in_channels, H, W)
        -> logits (m, num_classes).

        The defaults (C=16, layers=5, no auxiliary head, no drop path) are the small proxy network
        that training-free metrics score; DARTS' CIFAR evaluation network is C=36, layers=20,
        auxiliary=True (the ``darts`` training protocol sets these). DARTS_V2 there, 10 classes,
        has 3,349,342 parameters outside the auxiliary head (the paper's 3.3M; the DARTS code's
        count leaves the head out) and 3,825,768 with it.
        """
        return DartsNetwork(arch, num_classes, in_channels=in_channels, C=C, layers=layers, auxiliary=auxiliary,
                            drop_path=drop_path, stem_multiplier=stem_multiplier)

    # --- capabilities --------------------------------------------------------------------------

    def rank_table(self, path: str | Path | None = None) -> DartsTable:
        """The 1,000 trained cells of SWAP's release (:class:`~searchkit.tabular.darts.DartsTable`;
        ``path``: the user's copy). For rank correlation only: its accuracies come from another
        training protocol than this space's evaluation (see that module)."""
        from searchkit.tabular.darts import DartsTable

        key = None if path is None else str(path)
        if key not in self._tables:
            self._tables[key] = DartsTable.load(path)
        return self._tables[key]

    def supernet(self) -> type[DartsSuperNet]:
        """NASI's supernet of this space (:class:`~searchkit.spaces.darts_supernet.DartsSuperNet`)."""
        from searchkit.spaces.darts_supernet import DartsSuperNet

        return DartsSuperNet
