"""The strategy protocol: ``ask()`` returns queries, ``tell(query, answer)`` is the one way back.

A strategy proposes; the driver (:class:`searchkit.driver.Driver`) answers each query with an
oracle and charges its cost to the run's budget. Three kinds of query:

* :class:`Score` -- the training-free score of an architecture by the run's metric (for a
  training-based run, ``metric.name: validation``, the validation accuracy instead, so random
  search and evolution become the training-based baselines unchanged). The answer's ``extras``
  hold the strategy's :attr:`Needs.extra_metrics` of the same network (one shared NTK).
* :class:`Validate` -- the expensive oracle: NAS-Bench-201's short-schedule validation accuracy
  charged its simulated training time, or a real short training (a hybrid strategy's signal).
* :class:`OneShot` -- a whole one-shot search (e.g. NASI's supernet) run by the driver, which
  times it as training-free work; the answer names the architecture it selected.

A strategy declares what it needs (:class:`Needs`, from its class and options:
:meth:`Strategy.needs`, read with :func:`strategy_needs` without building one) so the engine opens
the oracles (and reports a missing validation split or table) before any work, and builds the
strategy once. It is seeded by the
``np.random.Generator`` it is given and is deterministic given the answers it is told, so a run
resumes by replaying its history into a fresh strategy. ``ask`` returning [] means it is done.

The answer the run reports is the driver's, by one rule for every strategy
(:class:`searchkit.driver.Incumbent`): the best validated architecture once any was validated,
else the best scored.
"""
from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping, Sequence, TypeVar, Union

import numpy as np

from searchkit.options import check_options
from searchkit.registry import Registry
from searchkit.spaces.base import SearchSpace

if TYPE_CHECKING:
    import torch

    from searchkit.data.base import Batch, DatasetSplits
    from searchkit.metrics.base import Metric


@dataclass(frozen=True)
class Score:
    """Ask for the training-free score of ``arch`` (and the strategy's extra metrics)."""

    arch: Any
    kind: ClassVar[str] = "score"


@dataclass(frozen=True)
class Validate:
    """Ask for the validation accuracy (%) of ``arch``."""

    arch: Any
    kind: ClassVar[str] = "validate"


@dataclass(frozen=True)
class OneShot:
    """Ask the driver to run ``search(context)`` -> (architecture, objective value): a one-shot
    search whose wall time is training-free work. ``arch`` is unknown until answered."""

    search: Callable[["SearchContext"], tuple[Any, float]]
    kind: ClassVar[str] = "oneshot"
    arch: ClassVar[Any] = None


Query = Union[Score, Validate, OneShot]


@dataclass(frozen=True)
class Answer:
    """What a query returned: the architecture (a one-shot query's selection; else the query's),
    the value (score, validation accuracy in %, or a one-shot objective) and, for a score, the
    strategy's extra metrics by spec."""

    arch: Any
    value: float
    extras: Mapping[str, float] = field(default_factory=dict)


#: The key of an answer's ``extras`` that holds the architecture's hardware cost (the run's
#: ``hardware`` device and quantity, e.g. pixel3 latency in ms), present whenever the run has a
#: cost model (a constraint, or ``hardware.device``).
COST = "hardware_cost"


@dataclass(frozen=True)
class Needs:
    """What a strategy needs from the run: ``extra_metrics`` (specs scored beside the run's
    metric on the same network), ``validation`` (it asks :class:`Validate` queries),
    ``training_free`` (it needs a training-free metric: ``metric.name: validation`` is refused),
    ``gradient`` (the metric's differentiable form, for a one-shot supernet search), ``cost``
    (every answer carries the architecture's hardware cost under :data:`COST`; the engine
    refuses a run without a cost model, e.g. a multi-objective search)."""

    extra_metrics: tuple[str, ...] = ()
    validation: bool = False
    training_free: bool = False
    gradient: bool = False
    cost: bool = False


@dataclass(frozen=True)
class TimeBudget:
    """A wall budget as a strategy sizes its options by it (:mod:`searchkit.plan`): ``seconds``
    left for the search, and the measured wall seconds of one ``score`` (per cell, the scoring
    workers' parallelism included) and of one ``validation`` (None when a table answers
    validations: they take no wall time, and table-benchmark defaults stand)."""

    seconds: float
    score: float
    validation: float | None


@dataclass(frozen=True)
class Workload:
    """What a strategy will ask for: ``scores`` (cells scored) and ``validations``; None: as
    many as the budget allows. ``oneshot``: it runs one one-shot search. ``scores_first``: the
    cells it scores before its first validation (a screen or a first pool)."""

    scores: int | None = None
    validations: int | None = None
    oneshot: bool = False
    scores_first: int = 0


@dataclass
class SearchContext:
    """What a one-shot search may use: the run's dataset, scoring batch (on ``device``), metric,
    and ``build``: the run's ``space.build`` options, i.e. the size of the network every
    architecture is scored and evaluated at (a supernet should represent that network)."""

    splits: DatasetSplits
    batch: Batch
    device: torch.device
    metric: Metric
    build: dict = field(default_factory=dict)


def distinct_samples(space: SearchSpace, rng: np.random.Generator, size: int,
                     exclude: Any = frozenset()) -> list[Any]:
    """Up to ``size`` distinct uniform samples of ``space`` not in ``exclude``, in draw order
    (fewer if the space is smaller: at most 50 * size draws)."""
    members: dict[Any, None] = {}
    for _ in range(50 * size):
        if len(members) == size:
            break
        arch = space.sample(rng)
        if arch not in exclude:
            members[arch] = None
    return list(members)


def mean_ranks(columns: Sequence[np.ndarray]) -> np.ndarray:
    """The mean over columns of each row's rank within its column, divided by n: (n,) in (0, 1]
    (ties averaged; higher values rank higher). A rank ensemble of several metrics over a
    population (the sum-of-ranks rule of TE-NAS and of our correlation study)."""
    from scipy.stats import rankdata

    return np.mean([rankdata(column) for column in columns], axis=0) / len(columns[0])


class Strategy(ABC):
    """Proposes queries (:meth:`ask`) and learns from their answers (:meth:`tell`).

    Options are the keyword arguments of ``__init__`` after ``space`` and ``rng`` (a run's
    ``strategy.options``, type-checked by :func:`get_strategy`). Subclasses that need more than a
    metric override the classmethod :meth:`needs`.
    """

    name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Refuse the old ``needs = Needs(...)`` attribute: needs are a classmethod of the options."""
        super().__init_subclass__(**kwargs)
        if "needs" in cls.__dict__ and not isinstance(cls.__dict__["needs"], classmethod):
            raise TypeError(f"strategy class {cls.__name__}: 'needs' is a classmethod of the options; write "
                            "'@classmethod def needs(cls, options): return Needs(...)'")

    @classmethod
    def needs(cls, options: Mapping[str, Any]) -> Needs:
        """What this strategy with ``options`` (every option, defaults filled in) needs from a run;
        a classmethod, so nothing is built to know it (:func:`strategy_needs`). Default: a metric only."""
        return Needs()

    def __init__(self, space: SearchSpace, rng: np.random.Generator) -> None:
        self.space = space
        self.rng = rng

    def workload(self) -> Workload:
        """What the strategy will ask for with its options (default: as much as the budget allows)."""
        return Workload()

    def budget_options(self, budget: TimeBudget, given: frozenset[str]) -> dict[str, Any]:
        """Options sized to a wall ``budget``, for options not in ``given`` (the user's); the
        engine rebuilds the strategy with them and records them in the run's config (so a resumed
        run asks the same queries). Default: none (the driver's budget alone stops the search)."""
        return {}

    @abstractmethod
    def ask(self) -> list[Query]:
        """Queries to answer next, in order; [] when finished."""

    @abstractmethod
    def tell(self, query: Query, answer: Answer) -> None:
        """The answer to a query returned by :meth:`ask`."""


STRATEGIES: Registry[Strategy] = Registry("strategy", "searchkit.strategies")
S = TypeVar("S", bound=type)


def strategy(name: str) -> Callable[[S], S]:
    """Class decorator: name ``cls`` and register it as strategy ``name``."""

    def register(cls: S) -> S:
        cls.name = name
        STRATEGIES.register(name)(cls)
        return cls

    return register


def _checked(name: str, options: Mapping[str, Any]) -> tuple[type[Strategy], dict[str, Any]]:
    """Strategy ``name``'s class and ``options`` type-checked (unknown or mistyped -> SearchkitError)."""
    cls = STRATEGIES.get(name)
    return cls, check_options(f"strategy {name!r}", cls, dict(options), given=("space", "rng"))


def get_strategy(name: str, space: SearchSpace, rng: np.random.Generator, **options: Any) -> Strategy:
    """The registered strategy ``name`` over ``space``, seeded by ``rng``, configured by ``options``
    (unknown or mistyped options -> SearchkitError)."""
    cls, checked = _checked(name, options)
    return cls(space, rng, **checked)


def strategy_needs(name: str, options: Mapping[str, Any]) -> Needs:
    """What strategy ``name`` with ``options`` needs from a run, without building it (its
    :meth:`Strategy.needs` given every option: ``options`` checked, then its ``__init__`` defaults)."""
    cls, checked = _checked(name, options)
    defaults = {key: p.default for key, p in inspect.signature(cls).parameters.items()
                if p.default is not inspect.Parameter.empty}
    return cls.needs({**defaults, **checked})
