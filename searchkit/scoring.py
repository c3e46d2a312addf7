"""What a training-free score is: the one definition (:class:`ScoringRecipe`), its store key, and
scoring architectures through the store (:class:`ScoreRunner`).

A score depends on the architecture, the metric (name and value options,
:meth:`~searchkit.metrics.base.Metric.key`) and the recipe: the space and its network build
options, the dataset and the seeded scoring batch drawn from it, the network initialisation seed
and the device kind. :meth:`ScoringRecipe.setting` turns the recipe into the store's
:class:`~searchkit.store.ScoreSetting`; nothing else builds one. The recipe is also what
``searchkit correlate`` writes to ``settings.yaml`` (:meth:`ScoringRecipe.to_dict`), so its
``scores.csv`` (an export of the store) imports back under exactly its key
(:func:`import_scores`).
"""
from __future__ import annotations

import csv
import dataclasses
import inspect
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch
import yaml

from searchkit.data import get_dataset, scoring_batch
from searchkit.data.base import Batch, DatasetSplits
from searchkit.errors import SearchkitError
from searchkit.metrics.base import Metric, parse_metric
from searchkit.metrics.scoring import score_metrics
from searchkit.runtime import build_network, release_memory
from searchkit.spaces import get_space
from searchkit.spaces.base import SearchSpace
from searchkit.rundir import complete_lines
from searchkit.store import ScoreSetting, ScoreStore, canonical_json
from searchkit.workers import Parallel, Scored, open_backend

#: settings.yaml written before the space was recorded scored NAS-Bench-201 cells.
_LEGACY_SPACE = "nb201"


@dataclass
class ScoringRecipe:
    """Everything that determines a training-free score besides the architecture (picklable, so
    a worker process rebuilds the parent's :class:`ScoringContext` from it).

    ``metrics``: label (the spec) -> metric; ``init_seed``: network initialisation seed;
    ``batch_fingerprint``: the scoring batch's, set by :meth:`open` and checked by every worker.
    """

    space: str
    dataset: str
    data_root: str | None = None
    options: dict = field(default_factory=dict)
    batch_size: int = 64
    data_seed: int = 0
    split: str = "train"
    metrics: dict[str, Metric] = field(default_factory=dict)
    init_seed: int = 0
    build: dict = field(default_factory=dict)
    device: str = "cpu"
    batch_fingerprint: str | None = None

    @classmethod
    def from_config(cls, cfg: Any, metrics: dict[str, Metric], device: torch.device) -> "ScoringRecipe":
        """A run's scoring: its data section, space, build options and ``cfg.network_seed``."""
        return cls(cfg.space.name, cfg.data.name, cfg.data.root, dict(cfg.data.options), cfg.data.batch_size,
                   cfg.data.seed, cfg.data.split, metrics, cfg.network_seed, dict(cfg.space.build), str(device))

    def to_dict(self) -> dict:
        """The recipe as settings.yaml holds it (metrics as their specs)."""
        data = dataclasses.asdict(dataclasses.replace(self, metrics={}))
        data["metrics"] = list(self.metrics)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "ScoringRecipe":
        """The recipe of a settings.yaml (extra keys, e.g. ``table``, ignored)."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values.setdefault("space", _LEGACY_SPACE)
        values["metrics"] = {spec: parse_metric(spec) for spec in values.get("metrics") or []}
        values["build"] = values.get("build") or {}
        try:
            return cls(**values)
        except TypeError as err:
            raise SearchkitError(f"scoring settings are incomplete: {err}") from None

    def canonical_build(self) -> dict:
        """``build`` with the space's own ``build`` defaults filled in (``{}`` and ``{"C": 16, "N": 5}``
        are the same NB201 networks); ``in_channels`` comes from the data."""
        parameters = inspect.signature(get_space(self.space).build).parameters
        defaults = {name: p.default for name, p in parameters.items()
                    if p.default is not inspect.Parameter.empty and name != "in_channels"}
        return {**defaults, **self.build}

    def setting(self) -> ScoreSetting:
        """The store's key for these scores (besides metric and architecture); needs the batch
        fingerprint (:meth:`open` sets it)."""
        if self.batch_fingerprint is None:
            raise RuntimeError("the scoring batch is not known yet; open() the recipe first")
        return ScoreSetting(self.space, canonical_json(self.canonical_build()), self.dataset, self.batch_fingerprint,
                            self.init_seed, self.device.split(":")[0])

    def open(self, space: SearchSpace | None = None, device: str | None = None) -> "ScoringContext":
        """Load the dataset and the scoring batch, and check every metric can use the batch;
        ``space`` overrides the registry's (e.g. a pool of it), ``device`` the recipe's."""
        splits = get_dataset(self.dataset, self.data_root, **self.options)
        if splits.num_classes < 2:
            raise SearchkitError(f"dataset {self.dataset!r} has {splits.num_classes} class; scoring and searching "
                                 "for classification need at least 2")
        batch = scoring_batch(splits, self.batch_size, self.data_seed, self.split)
        fingerprint = batch.fingerprint()
        if self.batch_fingerprint is not None and fingerprint != self.batch_fingerprint:
            raise SearchkitError(f"this process built scoring batch {fingerprint}, the run scores on "
                                 f"{self.batch_fingerprint}; every worker needs the same dataset files")
        for metric in self.metrics.values():
            metric.check_batch(batch)
        dev = torch.device(device or self.device)
        return ScoringContext(dataclasses.replace(self, batch_fingerprint=fingerprint), space or get_space(self.space),
                              splits, batch.to(dev), dev)


@dataclass
class ScoringContext:
    """A loaded :class:`ScoringRecipe`: the space, the dataset's splits, the scoring batch on ``device``."""

    recipe: ScoringRecipe
    space: SearchSpace
    splits: DatasetSplits
    batch: Batch
    device: torch.device

    def score(self, text: str) -> Scored:
        """Every metric on the seeded network of the architecture ``text`` (one shared NTK)."""
        start = time.perf_counter()
        net = build_network(self.space, self.space.decode(text), self.splits, self.recipe.init_seed, self.recipe.build)
        result = score_metrics(net.to(self.device), self.batch, self.recipe.metrics)
        seconds = time.perf_counter() - start
        del net
        release_memory()
        return result, seconds


class ScoreRunner:
    """Scores architectures through ``store``: what it holds for every metric is served without
    computing; the rest is scored by the backend ``parallel`` names and written to the store as
    each result arrives. Use as a context manager (workers are stopped on exit)."""

    def __init__(self, context: ScoringContext, store: ScoreStore | None, parallel: Parallel = Parallel()) -> None:
        self.context, self.store, self.parallel = context, store, parallel
        self.setting = context.recipe.setting()
        self.keys = {label: metric.key() for label, metric in context.recipe.metrics.items()}
        self._backend: Any = None  # started when something needs computing

    def __enter__(self) -> "ScoreRunner":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()

    def start(self) -> None:
        """Start the backend's workers now (they start on first use otherwise) and wait until
        they are up, so that a wall-budgeted search pays their start-up before its first scores."""
        if self._backend is None:
            self._backend = open_backend(self.context, self.parallel)
        self._backend.ready()

    def stored(self, text: str) -> dict[str, tuple[float, float]] | None:
        """label -> (value, seconds) from the store, or None unless it holds every metric of ``text``."""
        return None if self.store is None else self.store.get_all(self.setting, self.keys, text)

    def scores(self, texts: Iterable[str]) -> Iterator[tuple[str, dict[str, tuple[float, float]], float | None]]:
        """(arch, label -> (value, seconds), measured seconds or None if served by the store) for
        every distinct arch of ``texts``: stored ones first, in order, then the computed ones in
        the order they complete (at most two per worker in flight, so memory stays bounded)."""
        missing = []
        for text in dict.fromkeys(texts):
            held = self.stored(text)
            if held is None:
                missing.append(text)
            else:
                yield text, held, None
        if missing and self._backend is None:
            self._backend = open_backend(self.context, self.parallel)
        for text, (result, seconds) in (self._backend.map(missing) if missing else ()):
            if self.store is not None:
                self.store.put_many(self.setting, [(self.keys[label], text, value, alone)
                                                   for label, (value, alone) in result.items()])
            yield text, result, seconds


# --- scores.csv: the portable export of one recipe's scores ----------------------------------------


def scores_header(labels: list[str]) -> list[str]:
    """``scores.csv``'s columns: index, arch_str, one per metric, then one ``<metric>_s`` seconds column each."""
    return ["index", "arch_str", *labels, *(f"{label}_s" for label in labels)]


def import_scores(store: ScoreStore, directory: str | Path, setting: ScoreSetting | None = None) -> str:
    """Copy the scores of a ``searchkit correlate`` directory (its ``scores.csv`` under the recipe of
    its ``settings.yaml``) into ``store``; with ``setting``, only if the recipe's setting is that
    one. Returns a one-line note of what happened. Rows the store holds already are kept; the
    directory is only read (a correlate run may still be writing it), and incomplete rows skipped.
    """
    directory = Path(directory)
    settings_path, scores_path = directory / "settings.yaml", directory / "scores.csv"
    if not settings_path.is_file() or not scores_path.is_file():
        return f"{directory}: no settings.yaml + scores.csv (yet); not used"
    recipe = ScoringRecipe.from_dict(yaml.safe_load(settings_path.read_text()) or {})
    theirs = recipe.setting()
    if setting is not None:
        mismatched = [f.name for f in dataclasses.fields(ScoreSetting) if getattr(theirs, f.name) != getattr(setting, f.name)]
        if mismatched:
            return f"{directory}: scored with other settings ({', '.join(mismatched)} differ); not used"
    labels = list(recipe.metrics)
    keys = [recipe.metrics[label].key() for label in labels]
    reader = csv.reader(complete_lines(scores_path))
    if next(reader, None) != scores_header(labels):
        return f"{directory}: scores.csv does not have the columns its settings.yaml names; not used"
    entries, count = [], 0
    for raw in reader:
        try:
            values = [float(v) for v in raw[2:]] if len(raw) == 2 + 2 * len(labels) else None
        except ValueError:
            values = None
        if values is None:
            continue
        entries += [(key, raw[1], values[k], values[len(labels) + k]) for k, key in enumerate(keys)]
        count += 1
    store.put_many(theirs, entries)
    return f"{directory}: {count} architectures x {len(labels)} metrics"
