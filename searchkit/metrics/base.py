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
a :class:`DegenerateNetworkWarning`. A metric may offer a differentiable form
(:meth:`Metric.differentiable`, e.g. KCC and the NTK trace, used by NASI).

Specs: ``"kcc"``, ``"kcc:eps=0.01:bn=eval"`` (values parsed as YAML) -- accepted by every
command, config and benchmark (:func:`parse_metric`).
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import typing
import warnings
from typing import Any, Callable, ClassVar, TypeVar

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


class Metric:
    """A training-free fitness: (network at initialisation, scoring batch) -> float, higher is better.

    Subclasses are dataclasses (use :func:`metric`) whose fields are their options, and implement
    :meth:`compute`. Class attributes: ``name`` (registry key), ``worst`` (the score of a
    degenerate network), ``quantity`` (what the number is, with its unit, for reports),
    ``min_classes`` (classes the scoring batch must contain: 2 for metrics of the labels),
    ``min_batch`` (examples it must contain),
    ``unbounded`` (a capacity measure that grows without bound, e.g. the NTK trace: NASI
    constrains such objectives, seed 002 eq. 13).
    """

    name: ClassVar[str] = ""
    worst: ClassVar[float] = -math.inf
    quantity: ClassVar[str] = ""
    magnitude: ClassVar[str | None] = None
    min_classes: ClassVar[int] = 1
    min_batch: ClassVar[int] = 1
    unbounded: ClassVar[bool] = False

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

    def __call__(self, net: nn.Module, batch: Batch) -> float:
        """The score of ``net`` on ``batch`` (see the module docstring for the guards)."""
        device = next(net.parameters(), torch.empty(0)).device
        try:
            value = self.compute(net, batch.to(device))
        except (RuntimeError, torch.OutOfMemoryError) as err:
            if not is_out_of_memory(err):
                raise
            if device.type != "cuda":
                raise SearchkitError(f"out of memory computing {self.name} on a batch of {batch.x.shape[0]}; "
                                     "lower data.batch_size (or --batch-size)") from None
            warnings.warn(f"{self.name}: out of CUDA memory; scoring this network on the CPU", ResourceWarning)
            torch.cuda.empty_cache()
            value = self.compute(copy.deepcopy(net).cpu(), batch.to(torch.device("cpu")))
        return self.guard(value)

    def compute(self, net: nn.Module, batch: Batch) -> float:
        """The raw score (may be non-finite for a degenerate network); ``batch`` is on ``net``'s device."""
        raise NotImplementedError

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


METRICS: Registry[Metric] = Registry("metric")
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
