"""The ask/tell strategy protocol (docs/design.md, "Interfaces").

A strategy sees two oracles through the engine, and the engine, not the strategy, charges each
answer to the run's budget:

* ``score``: every plain architecture returned by :meth:`Strategy.ask` is scored by the run's
  training-free metric and told back with ``tell(arch, score)``. A strategy that also needs
  other metrics of the same network lists their specs in :attr:`Strategy.extra_metrics`
  (e.g. ``"ntk_cond"``); the engine scores them together (one shared NTK) and calls
  ``tell_extras(arch, {spec: value})`` just before ``tell``.
* ``validate``: an architecture wrapped as ``Validate(arch)`` gets the expensive oracle instead
  (NAS-Bench-201's 12-epoch validation accuracy, charged its simulated training time, or a real
  short training), told back with ``tell_validation(arch, accuracy)``. A strategy that does this
  sets :attr:`Strategy.validates`, so the engine opens the oracle (and reports a missing table or
  validation split) before the search starts.

``ask`` returning an empty list means the strategy has finished. A :class:`OneShotStrategy`
(e.g. a supernet method) does not ask: the engine calls its :meth:`~OneShotStrategy.search`
once with the run's data and times the call as training-free work.

A strategy is seeded by the ``np.random.Generator`` it is given and is deterministic given the
answers it is told, so a run can be resumed by replaying the answers of its history into a
fresh strategy.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from searchkit.spaces.base import SearchSpace

if TYPE_CHECKING:
    import torch

    from searchkit.data.base import Batch, DatasetSplits


@dataclass(frozen=True)
class Validate:
    """Returned by :meth:`Strategy.ask` to ask for the validate oracle on ``arch``."""

    arch: Any


@dataclass
class SearchContext:
    """What a one-shot strategy may use: the run's dataset, scoring batch (on ``device``), metric,
    and ``build``: the run's ``space.build`` options, i.e. the size of the network every
    architecture is scored and evaluated at (a supernet should represent that network)."""

    splits: DatasetSplits
    batch: Batch
    device: torch.device
    metric: str
    metric_options: dict = field(default_factory=dict)
    build: dict = field(default_factory=dict)


class Strategy(ABC):
    """Proposes architectures (``ask``) and learns from their scores (``tell``); higher is better.

    ``best_arch`` / ``best_score`` is the answer so far; ``selected_by`` says whether it was
    chosen by training-free score (``"score"``) or by validation accuracy (``"validation"``).
    """

    name: str = ""
    extra_metrics: tuple[str, ...] = ()
    validates: bool = False
    selected_by: str = "score"

    def __init__(self, space: SearchSpace, rng: np.random.Generator) -> None:
        self.space = space
        self.rng = rng
        self.best_arch: Any = None
        self.best_score = -np.inf

    @abstractmethod
    def ask(self) -> list[Any]:
        """Architectures to score (or ``Validate(arch)`` to validate) next; [] when finished."""

    def tell(self, arch: Any, score: float) -> None:
        """Record the score of an architecture returned by :meth:`ask`."""
        if score > self.best_score:
            self.best_arch, self.best_score = arch, score

    def tell_extras(self, arch: Any, extras: dict[str, float]) -> None:
        """Scores of :attr:`extra_metrics` (spec -> value) of the architecture told next."""

    def tell_validation(self, arch: Any, accuracy: float) -> None:
        """Record the validation accuracy (%) of an architecture asked for as ``Validate(arch)``."""
        raise NotImplementedError(f"strategy {self.name!r} does not ask for validations")

    def state_dict(self) -> dict:
        """Everything needed to continue: the generator state and the best so far (archs encoded)."""
        return {
            "rng": self.rng.bit_generator.state,
            "best": None if self.best_arch is None else self.space.encode(self.best_arch),
            "best_score": float(self.best_score),
        }

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.best_arch = None if state["best"] is None else self.space.decode(state["best"])
        self.best_score = state["best_score"]


class OneShotStrategy(Strategy):
    """A strategy that searches in one call (e.g. over a supernet) instead of asking."""

    def ask(self) -> list[Any]:
        raise TypeError(f"{self.name!r} is a one-shot strategy; the engine calls search(context)")

    @abstractmethod
    def search(self, context: SearchContext) -> tuple[Any, float]:
        """The selected architecture and the strategy's objective at it."""
