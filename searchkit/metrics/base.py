"""The metric base class, the registry, and the one syntax for a metric with options.

A metric is a dataclass whose fields are its options; ``@metric("name")`` registers it. Options
are typed and checked when the metric is built (``kcc:eps=abc`` is a one-line error, not a
traceback deep inside the score), and :meth:`Metric.key` (the score store's key) is built from
the declared options, so two metrics with the same key always compute the same values. Options
that never change a value (e.g. the NTK's ``chunk_size``) are declared with :func:`memory_option`
and left out of the key.

Every metric is "higher is better". :meth:`Metric.__call__` is the one entry point: it moves
the batch to the network's device, retries on the CPU when a CUDA device runs out of memory,
and turns a non-finite value (a degenerate network) into the metric's documented ``worst`` with
a :class:`DegenerateNetworkWarning`. :func:`score_metrics` scores several metrics on one network
through it, passing them one :class:`SharedWork` so that what they have in common (the NTK
metrics' Theta) is computed once. A metric may offer a differentiable form
(:meth:`Metric.differentiable`, e.g. KCC and the NTK trace, used by NASI).

The class attributes every metric has (``worst``, ``quantity``, ... :data:`CLASS_ATTRIBUTES`) are
set without a type annotation: annotated, a dataclass would make them options (and parts of the
store key), so a subclass that annotates one is refused when it is defined (TypeError).

Specs: ``"kcc"``, ``"kcc:eps=0.01:bn=eval"`` (values parsed as YAML) -- accepted by every
command, config and benchmark (:func:`parse_metric`).
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
import typing
import warnings
from typing import Any, Callable, ClassVar, Hashable, Iterable, Mapping, TypeVar

import torch
import yaml
from torch import nn

from searchkit.data.base import Batch
from searchkit.errors import SearchkitError
from searchkit.options import check_value
from searchkit.registry import Registry


class DegenerateNetworkWarning(UserWarning):
    """A network gave a non-finite score; it was given the metric's worst score instead."""


def memory_option(default: Any) -> Any:
    """A dataclass field for an option that changes memory or speed but never a value: it is
    left out of :meth:`Metric.key`."""
    return dataclasses.field(default=default, metadata={"key": False})


def is_out_of_memory(err: BaseException) -> bool:
    """True for CUDA and CPU allocator failures (the CPU one is a plain RuntimeError)."""
    text = str(err)
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text


def network_device(net: nn.Module) -> torch.device:
    """The device of ``net``'s parameters (the CPU for a network without any)."""
    return next(net.parameters(), torch.empty(0)).device


class Metric:
    """A training-free fitness: (network at initialisation, scoring batch) -> float, higher is better.

    Subclasses are dataclasses (use :func:`metric`) whose fields are their options, and implement
    :meth:`compute`. Class attributes (:data:`CLASS_ATTRIBUTES`; set them without an annotation,
    ``worst = 0.0``): ``name`` (registry key), ``worst`` (the score of a degenerate network),
    ``quantity`` (what the number is, with its unit, for reports), ``magnitude`` (a reports' axis
    hint), ``min_classes`` (classes the scoring batch must contain: 2 for metrics of the labels),
    ``min_batch`` (examples it must contain), ``unbounded`` (a capacity measure that grows
    without bound, e.g. the NTK trace: NASI constrains such objectives, seed 002 eq. 13).
    """

    name: ClassVar[str] = ""
    worst: ClassVar[float] = -math.inf
    quantity: ClassVar[str] = ""
    magnitude: ClassVar[str | None] = None
    min_classes: ClassVar[int] = 1
    min_batch: ClassVar[int] = 1
    unbounded: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Refuse a subclass that annotates a class attribute (it would become an option)."""
        super().__init_subclass__(**kwargs)
        for attribute, annotation in cls.__dict__.get("__annotations__", {}).items():
            if attribute in CLASS_ATTRIBUTES and not _is_class_var(annotation):
                raise TypeError(f"metric class {cls.__name__}: {attribute!r} is a class attribute of every metric, "
                                f"not an option; write '{attribute} = ...' without a type annotation")

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for item in dataclasses.fields(self):
            value = check_value(f"metric {self.name!r} option {item.name}", getattr(self, item.name), hints[item.name])
            object.__setattr__(self, item.name, value)
        self.check()

    def check(self) -> None:
        """Range checks of the options beyond their types (SearchkitError); none by default."""

    def check_batch(self, batch: Batch) -> None:
        """SearchkitError unless the scoring batch has the examples and classes this metric needs
        (e.g. KCC of a batch with one class is 0 for every network: no ranking at all)."""
        m, classes = batch.x.shape[0], int(torch.unique(batch.y).numel())
        if m < self.minimum_batch() or classes < self.min_classes:
            raise SearchkitError(
                f"metric {self.name!r} needs a scoring batch of at least {self.minimum_batch()} examples from at "
                f"least {self.min_classes} classes; this one has {m} from {classes}; raise data.batch_size "
                "(--batch-size) or use a dataset with more classes")

    def minimum_batch(self) -> int:
        return self.min_batch

    def options(self) -> dict[str, Any]:
        """Every option with its value (defaults included)."""
        return {item.name: getattr(self, item.name) for item in dataclasses.fields(self)}

    def key(self) -> tuple[str, str]:
        """(name, canonical JSON of the options that can change a value): the score store's key.
        ``kcc`` and ``kcc:eps=0.0001`` are one key when the default eps is 1e-4."""
        options = {item.name: getattr(self, item.name) for item in dataclasses.fields(self)
                   if item.metadata.get("key", True)}
        return self.name, json.dumps(options, sort_keys=True, separators=(",", ":"))

    def __call__(self, net: nn.Module, batch: Batch, shared: SharedWork | None = None) -> float:
        """The score of ``net`` on ``batch`` (see the module docstring for the guards); ``shared``:
        the work of the other metrics scored on this network and batch (:func:`score_metrics`)."""
        device = network_device(net)
        try:
            value = self.compute_shared(net, batch.to(device), shared)
        except (RuntimeError, torch.OutOfMemoryError) as err:
            if not is_out_of_memory(err):
                raise
            if device.type != "cuda":
                raise SearchkitError(f"out of memory computing {self.name} on a batch of {batch.x.shape[0]}; "
                                     "lower data.batch_size (or --batch-size)") from None
            warnings.warn(f"{self.name}: out of CUDA memory; scoring this network on the CPU", ResourceWarning)
            torch.cuda.empty_cache()
            value = self.compute_shared(copy.deepcopy(net).cpu(), batch.to(torch.device("cpu")), shared)
        return self.guard(value)

    def compute(self, net: nn.Module, batch: Batch) -> float:
        """The raw score (may be non-finite for a degenerate network); ``batch`` is on ``net``'s device."""
        raise NotImplementedError

    @property
    def shared_key(self) -> Hashable | None:
        """The key of the work this metric shares with others on one network and batch (the NTK
        metrics' Theta per mode), or None when it shares nothing (the default)."""
        return None

    def compute_shared(self, net: nn.Module, batch: Batch, shared: SharedWork | None) -> float:
        """:meth:`compute`, reusing what ``shared`` holds under :attr:`shared_key`; by default
        nothing is shared."""
        return self.compute(net, batch)

    def guard(self, value: float) -> float:
        """``value`` if finite, else :attr:`worst` with a :class:`DegenerateNetworkWarning`."""
        if math.isfinite(value):
            return value
        warnings.warn(f"{self.name} gave {value}; using its worst score {self.worst}", DegenerateNetworkWarning)
        return self.worst

    def differentiable(self, net: nn.Module, batch: Batch) -> torch.Tensor:
        """A scalar tensor equal to the score (or a documented surrogate that ranks like it, e.g.
        NASI's trace approximation) whose graph reaches whatever the network's forward depends on
        (e.g. a supernet's architecture weights). Metrics without one raise."""
        self.require_gradient()
        raise NotImplementedError

    @classmethod
    def offers_gradient(cls) -> bool:
        return cls.differentiable is not Metric.differentiable

    def require_gradient(self) -> None:
        """SearchkitError unless this metric has a differentiable form."""
        if not self.offers_gradient():
            raise SearchkitError(f"metric {self.name!r} has no differentiable form; NASI can optimise "
                                 f"{', '.join(n for n in METRICS.names() if METRICS.get(n).offers_gradient())}")


def _is_class_var(annotation: Any) -> bool:
    """Whether an annotation (a string under ``from __future__ import annotations``) is a ClassVar."""
    if isinstance(annotation, str):
        return annotation.split("[")[0].strip() in ("ClassVar", "typing.ClassVar")
    return annotation is ClassVar or typing.get_origin(annotation) is ClassVar


#: The class attributes every metric has (never options): the ClassVars declared on :class:`Metric`.
CLASS_ATTRIBUTES = frozenset(Metric.__annotations__)


class SharedWork:
    """What the metrics scored on one network and batch have in common, each piece computed once
    (the NTK metrics' Theta per ``(bn, output)`` mode), with the seconds it took.

    ``reused_seconds`` adds up the seconds of the pieces served again instead of recomputed, so a
    metric can be charged what it would cost alone (:func:`score_metrics`). ``metrics``: every metric
    scored on it, so the first to compute a piece can make it serve the others too (the loss-gradient
    pass keeps its graph when grasp is among them).
    """

    def __init__(self, metrics: Iterable[Metric] = ()) -> None:
        self._pieces: dict[Hashable, tuple[Any, float]] = {}
        self.reused_seconds = 0.0
        self.metrics = tuple(metrics)

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The piece stored under ``key``, else ``compute()`` (stored with its seconds)."""
        if key in self._pieces:
            piece, seconds = self._pieces[key]
            self.reused_seconds += seconds
            return piece
        start = time.perf_counter()
        piece = compute()
        self._pieces[key] = (piece, time.perf_counter() - start)
        return piece


def score_metrics(net: nn.Module, batch: Batch, metrics: Mapping[str, Metric]) -> dict[str, tuple[float, float]]:
    """label -> (score, seconds) for every metric on the same network and batch, each through
    :meth:`Metric.__call__` (so every one has the CPU fallback and the degenerate-value guard).

    They share one :class:`SharedWork`: metrics with the same ``shared_key`` (NTK metrics: BN mode, output
    reduction) share one Theta. Each is charged the shared pieces it used plus its own time, i.e.
    what it would cost alone, so per-metric seconds stay comparable whatever else was scored beside it.
    """
    shared = SharedWork(metrics.values())
    results = {}
    for label, metric in metrics.items():
        start, reused = time.perf_counter(), shared.reused_seconds
        value = metric(net, batch, shared)
        results[label] = (value, time.perf_counter() - start + shared.reused_seconds - reused)
    return results


METRICS: Registry[Metric] = Registry("metric", "searchkit.metrics")
M = TypeVar("M", bound=type)


def metric(name: str) -> Callable[[M], M]:
    """Class decorator: ``cls`` becomes a dataclass (its fields are its options), named and registered as ``name``."""

    def register(cls: M) -> M:
        cls.name = name
        cls = dataclasses.dataclass(cls)
        METRICS.register(name)(cls)
        return cls

    return register


def get_metric(metric_name: str, /, **options: Any) -> Metric:
    """The registered metric ``metric_name`` with ``options`` (unknown or mistyped options -> SearchkitError)."""
    name = metric_name
    cls = METRICS.get(name)
    known = [item.name for item in dataclasses.fields(cls)]
    unknown = [key for key in options if key not in known]
    if unknown:
        raise SearchkitError(f"metric {name!r} has no option {unknown[0]!r}; its options are: {', '.join(known) or 'none'}")
    return cls(**options)


def parse_metric(spec: str, options: dict | None = None) -> Metric:
    """A metric from its spec ``name[:key=value...]`` (values parsed as YAML), plus ``options``
    (a config's ``metric.options``; an option in both is an error)."""
    if not isinstance(spec, str) or not spec:
        raise SearchkitError(f"a metric is written name[:key=value...], e.g. kcc:eps=0.01; got {spec!r}")
    name, *pairs = spec.split(":")
    parsed: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise SearchkitError(f"metric spec {spec!r}: options are written name:key=value[:key=value]")
        try:
            parsed[key] = yaml.safe_load(raw)
        except yaml.YAMLError:
            parsed[key] = raw
    for key, value in (options or {}).items():
        if key in parsed:
            raise SearchkitError(f"metric option {key!r} is given twice (in {spec!r} and in the options)")
        parsed[key] = value
    return get_metric(name, **parsed)
