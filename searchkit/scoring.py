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

Draws (``scoring.draws: k`` in a run config, ``searchkit correlate --draws K``): a score can be the
mean over k draws of the network's initialisation and the scoring batch. Draw d initialises from
``init_seed + d`` and draws its batch with ``data_seed + d``, so draw 0 is the single-draw recipe and
its stored scores are reused. Each draw is its own store row, under its own setting (seed and batch
fingerprint differ; the store's schema is unchanged): cached draws are served, only the missing ones
computed, and k can grow later without rescoring the first k. The reported value is the arithmetic
mean over the draws of each metric: the draws are exchangeable samples of one random score on one
scale, and their mean is the unbiased, lowest-variance estimate of its expectation over
initialisations and batches (a median would discard half the draws at even k and has ~1.6 times
the variance for near-normal scores); the seconds are the sum over the draws.
"""
from __future__ import annotations

import csv
import dataclasses
import inspect
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch
import yaml

from searchkit.data import get_dataset, scoring_batch
from searchkit.data.base import Batch, DatasetSplits
from searchkit.errors import SearchkitError
from searchkit.metrics.base import Metric, parse_metric
from searchkit.metrics.base import score_metrics
from searchkit.runtime import SCORING_TRIM_ABOVE, build_network, release_memory
from searchkit.spaces import get_space
from searchkit.spaces.base import SearchSpace
from searchkit.rundir import complete_lines
from searchkit.store import ScoreSetting, ScoreStore, canonical_json
from searchkit.workers import Parallel, Scored, open_backend

#: label -> (value, seconds): one architecture's scores (a draw's, or the mean over draws).
Result = dict[str, tuple[float, float]]

@dataclass
class ScoringRecipe:
    """Everything that determines a training-free score besides the architecture (picklable, so
    a worker process rebuilds the parent's :class:`ScoringContext` from it).

    ``metrics``: label (the spec) -> metric; ``init_seed``: network initialisation seed;
    ``batch_fingerprint``: the scoring batch's, set by :meth:`open` and checked by every worker;
    ``draws``: how many draws a score averages (module docstring); ``draw_fingerprints``: the
    batches of draws 1..k-1, set by :meth:`open`.
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
    draws: int = 1
    draw_fingerprints: list[str] = field(default_factory=list)

    @classmethod
    def from_config(cls, cfg: Any, metrics: dict[str, Metric], device: torch.device) -> "ScoringRecipe":
        """A run's scoring: its data section, space, build options and ``cfg.network_seed``."""
        return cls(cfg.space.name, cfg.data.name, cfg.data.root, dict(cfg.data.options), cfg.data.batch_size,
                   cfg.data.seed, cfg.data.split, metrics, cfg.network_seed, dict(cfg.space.build), str(device),
                   draws=cfg.scoring.draws)

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
        if "space" not in values:  # written before the space was recorded: those scored NB201 cells
            warnings.warn("scoring settings without 'space:' are read as NAS-Bench-201's (space: nb201); add that "
                          "line to the settings.yaml (the default goes in the next release)", DeprecationWarning,
                          stacklevel=2)
            values["space"] = "nb201"
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

    def setting(self, draw: int = 0) -> ScoreSetting:
        """The store's key for draw ``draw``'s scores (besides metric and architecture): init seed
        ``init_seed + draw`` and that draw's batch; needs the batch fingerprints (:meth:`open` sets them)."""
        fingerprints = [self.batch_fingerprint, *self.draw_fingerprints]
        if self.batch_fingerprint is None or len(fingerprints) < self.draws:
            raise RuntimeError("the scoring batches are not known yet; open() the recipe first")
        return ScoreSetting(self.space, canonical_json(self.canonical_build()), self.dataset, fingerprints[draw],
                            self.init_seed + draw, self.device.split(":")[0])

    def open(self, space: SearchSpace | None = None, device: str | None = None) -> "ScoringContext":
        """Load the dataset and every draw's scoring batch, and check every metric can use them;
        ``space`` overrides the registry's (e.g. a pool of it), ``device`` the recipe's."""
        if not isinstance(self.draws, int) or self.draws < 1:
            raise SearchkitError(f"scoring.draws must be a whole number >= 1, got {self.draws!r}")
        splits = get_dataset(self.dataset, self.data_root, **self.options)
        if splits.num_classes < 2:
            raise SearchkitError(f"dataset {self.dataset!r} has {splits.num_classes} class; scoring and searching "
                                 "for classification need at least 2")
        batches = [scoring_batch(splits, self.batch_size, self.data_seed + d, self.split) for d in range(self.draws)]
        fingerprints = [batch.fingerprint() for batch in batches]
        known = [self.batch_fingerprint, *self.draw_fingerprints]
        for mine, theirs in zip(fingerprints, known):
            if theirs is not None and mine != theirs:
                raise SearchkitError(f"this process built scoring batch {mine}, the run scores on {theirs}; "
                                     "every worker needs the same dataset files")
        for batch in batches:
            for metric in self.metrics.values():
                metric.check_batch(batch)
        dev = torch.device(device or self.device)
        recipe = dataclasses.replace(self, batch_fingerprint=fingerprints[0], draw_fingerprints=fingerprints[1:])
        return ScoringContext(recipe, space or get_space(self.space), splits, [b.to(dev) for b in batches], dev)


@dataclass
class ScoringContext:
    """A loaded :class:`ScoringRecipe`: the space, the dataset's splits, each draw's scoring batch on
    ``device`` (``batch`` is draw 0's)."""

    recipe: ScoringRecipe
    space: SearchSpace
    splits: DatasetSplits
    batches: list[Batch]
    device: torch.device

    @property
    def batch(self) -> Batch:
        return self.batches[0]

    def score(self, text: str, draw: int = 0) -> Scored:
        """Every metric on draw ``draw``'s network of the architecture ``text`` (initialised from
        ``init_seed + draw``) and batch (one shared NTK)."""
        start = time.perf_counter()
        net = build_network(self.space, self.space.decode(text), self.splits, self.recipe.init_seed + draw,
                            self.recipe.build)
        result = score_metrics(net.to(self.device), self.batches[draw], self.recipe.metrics)
        seconds = time.perf_counter() - start
        del net
        release_memory(above=SCORING_TRIM_ABOVE)
        return result, seconds


def combined_seconds(metrics: dict[str, Metric], seconds: dict[str, float]) -> float:
    """What scoring ``metrics`` together on one network costs, from each one's stand-alone seconds.

    Metrics with the same ``shared_key`` share its work (:func:`~searchkit.metrics.base.score_metrics`:
    the NTK metrics' Theta per mode), so a group of them is charged its largest time; every other
    metric its own.
    """
    total, groups = 0.0, {}
    for label, metric in metrics.items():
        if metric.shared_key is None:
            total += seconds[label]
        else:
            groups[metric.shared_key] = max(groups.get(metric.shared_key, 0.0), seconds[label])
    return total + sum(groups.values())


def mean_over_draws(results: list[Result]) -> Result:
    """label -> (mean value, summed seconds) over the draws' results (module docstring: why the mean)."""
    return {label: (math.fsum(r[label][0] for r in results) / len(results), math.fsum(r[label][1] for r in results))
            for label in results[0]}


class ScoreRunner:
    """Scores architectures through ``store``: what it holds for every metric and draw is served
    without computing; the missing draws are scored by the backend ``parallel`` names and written to
    the store (each under its draw's setting) as each result arrives. Use as a context manager
    (workers are stopped on exit)."""

    def __init__(self, context: ScoringContext, store: ScoreStore | None, parallel: Parallel = Parallel()) -> None:
        self.context, self.store, self.parallel = context, store, parallel
        self.setting = context.recipe.setting()
        self.settings = [context.recipe.setting(d) for d in range(context.recipe.draws)]
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

    def stored_draws(self, text: str) -> list[Result | None]:
        """Each draw's label -> (value, seconds) from the store (None for a draw it lacks any metric of)."""
        if self.store is None:
            return [None] * len(self.settings)
        return [self.store.get_all(setting, self.keys, text) for setting in self.settings]

    def stored(self, text: str) -> Result | None:
        """label -> (mean value, summed seconds) over the draws from the store, or None unless it holds
        every metric of every draw of ``text``."""
        draws = self.stored_draws(text)
        return None if any(r is None for r in draws) else mean_over_draws(draws)

    def scores(self, texts: Iterable[str]) -> Iterator[tuple[str, Result, float | None]]:
        """(arch, label -> (mean value, summed seconds) over the draws, measured seconds or None if the
        store served every draw) for every distinct arch of ``texts``: fully stored ones first, in
        order, then the others as their last missing draw completes (at most two tasks per worker in
        flight, so memory stays bounded). Measured seconds: the computed draws' time plus
        :func:`combined_seconds` of each stored draw's (what the store charges for it)."""
        partial: dict[str, list[Result | None]] = {}
        tasks = []
        for text in dict.fromkeys(texts):
            draws = self.stored_draws(text)
            if all(r is not None for r in draws):
                yield text, mean_over_draws(draws), None
                continue
            partial[text] = draws
            tasks += [(text, d) for d, r in enumerate(draws) if r is None]
        if tasks and self._backend is None:
            self._backend = open_backend(self.context, self.parallel)
        metrics = self.context.recipe.metrics
        measured = {text: math.fsum(combined_seconds(metrics, {k: s for k, (_, s) in r.items()})
                                    for r in draws if r is not None) for text, draws in partial.items()}
        for (text, draw), (result, seconds) in (self._backend.map(tasks) if tasks else ()):
            if self.store is not None:
                self.store.put_many(self.settings[draw], [(self.keys[label], text, value, alone)
                                                          for label, (value, alone) in result.items()])
            partial[text][draw] = result
            measured[text] += seconds
            if all(r is not None for r in partial[text]):
                yield text, mean_over_draws(partial.pop(text)), measured.pop(text)


# --- scores.csv: the portable export of one recipe's scores ----------------------------------------


def scores_header(labels: list[str]) -> list[str]:
    """``scores.csv``'s columns: index, arch_str, one per metric, then one ``<metric>_s`` seconds column each."""
    return ["index", "arch_str", *labels, *(f"{label}_s" for label in labels)]


def draws_header(labels: list[str]) -> list[str]:
    """``draws.csv``'s columns (a recipe of several draws): :func:`scores_header` with ``draw`` after arch_str."""
    header = scores_header(labels)
    return [*header[:2], "draw", *header[2:]]


def import_scores(store: ScoreStore, directory: str | Path, setting: ScoreSetting | None = None) -> str:
    """Copy the scores of a ``searchkit correlate`` directory into ``store``, under the recipe of its
    ``settings.yaml``; with ``setting``, only if the recipe's (draw 0) setting is that one. Returns a
    one-line note of what happened. Rows the store holds already are kept; the directory is only read
    (a correlate run may still be writing it), and incomplete rows skipped.

    A single-draw recipe (every directory written before draws existed included) is read from
    ``scores.csv``, as draw 0. A recipe of k > 1 draws is read from ``draws.csv``, each row under its
    draw's setting (``scores.csv`` then holds the means over draws, for reports, and is not imported).
    """
    directory = Path(directory)
    settings_path = directory / "settings.yaml"
    if not settings_path.is_file():
        return f"{directory}: no settings.yaml + scores.csv (yet); not used"
    recipe = ScoringRecipe.from_dict(yaml.safe_load(settings_path.read_text()) or {})
    by_draw = recipe.draws > 1
    scores_path = directory / ("draws.csv" if by_draw else "scores.csv")
    if not scores_path.is_file():
        return f"{directory}: no settings.yaml + {scores_path.name} (yet); not used"
    theirs = recipe.setting()
    if setting is not None:
        mismatched = [f.name for f in dataclasses.fields(ScoreSetting) if getattr(theirs, f.name) != getattr(setting, f.name)]
        if mismatched:
            return f"{directory}: scored with other settings ({', '.join(mismatched)} differ); not used"
    labels = list(recipe.metrics)
    keys = [recipe.metrics[label].key() for label in labels]
    reader = csv.reader(complete_lines(scores_path))
    if next(reader, None) != (draws_header if by_draw else scores_header)(labels):
        return f"{directory}: {scores_path.name} does not have the columns its settings.yaml names; not used"
    entries: dict[int, list] = {}
    archs: set[str] = set()
    first = 3 if by_draw else 2
    for raw in reader:
        try:
            draw = int(raw[2]) if by_draw else 0
            values = [float(v) for v in raw[first:]] if len(raw) == first + 2 * len(labels) else None
        except ValueError:
            values = None
        if values is None or not 0 <= draw < recipe.draws:
            continue
        entries.setdefault(draw, []).extend((key, raw[1], values[k], values[len(labels) + k]) for k, key in enumerate(keys))
        archs.add(raw[1])
    for draw, rows in entries.items():
        store.put_many(recipe.setting(draw), rows)
    draws = f" x {recipe.draws} draws" if by_draw else ""
    return f"{directory}: {len(archs)} architectures x {len(labels)} metrics{draws}"
