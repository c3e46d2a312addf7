"""Small shared test doubles: a plain dataset, a benchmark script as a module, and oracles for driving a strategy with the real
driver (:class:`searchkit.driver.Driver`) on synthetic landscapes."""
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import torch
from torch.utils.data import Dataset

from searchkit.config import BudgetConfig
from searchkit.driver import Driver, Reply, SearchLog


def benchmark_script(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` loaded as a module (the scripts are not a package)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class PlainData(Dataset):
    """Map-style dataset yielding (x (C,H,W) float32, y int); no ``.tensors()`` fast path."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.x[i], int(self.y[i])


@dataclass
class FakeOracle:
    """Answers queries with ``value(arch)`` (and ``extras(arch)``), charging ``cost(arch)``
    simulated seconds; records the architectures it was asked about."""

    kind: str
    value: Callable[[Any], float]
    extras: Callable[[Any], dict] | None = None
    cost_of: Callable[[Any], float] | None = None
    quantity: str = "fake"

    def __post_init__(self) -> None:
        self.asked: list = []

    def cost(self, text: str) -> None:
        return None

    def prefetch(self, texts: list[str]) -> None:
        return None

    def __call__(self, query, text) -> Reply:
        self.asked.append(query.arch)
        extras = {} if self.extras is None else self.extras(query.arch)
        cost = 0.0 if self.cost_of is None else self.cost_of(query.arch)
        return Reply(self.value(query.arch), extras=extras, simulated_seconds=cost)


def drive(strategy, score, accuracy=None, extras=None, archs=None, simulated_seconds=None) -> SearchLog:
    """Drive ``strategy`` with the real driver on synthetic oracles: ``score(arch)`` (plus
    ``extras(arch) -> dict``) answers score queries, ``accuracy(arch)`` validations. The budget is
    ``archs`` queries and/or ``simulated_seconds`` (default: until the strategy stops, at most
    10,000 queries)."""
    oracles = {"score": FakeOracle("score", score, extras)}
    if accuracy is not None:
        oracles["validate"] = FakeOracle("validate", accuracy)
    budget = BudgetConfig(archs=archs if archs is not None or simulated_seconds is not None else 10_000,
                          simulated_seconds=simulated_seconds)
    return Driver(strategy, strategy.space, oracles, budget).run()


def validated(log: SearchLog) -> list[tuple[str, float]]:
    """The (arch text, accuracy) of every validation row, in order."""
    return [(row.arch, row.score) for row in log.history if row.kind == "validate"]
