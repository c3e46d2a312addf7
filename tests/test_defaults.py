"""``strategy: auto`` (issue 26 ask 5): evolution by default, the warm-up hybrid under a hardware
constraint when validation is affordable (a table with the run's dataset, or training asked for)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from searchkit import run_search
from searchkit.config import config_from_dict
from searchkit.defaults import CONSTRAINED, CONSTRAINED_METRIC, SIMULATED_SECONDS, UNCONSTRAINED, resolve_strategy
from searchkit.errors import SearchkitError
from searchkit.hardware import Constraint, TableCost
from searchkit.paths import find_data
from searchkit.spaces import NB201Space
from searchkit.spaces.constrained import FeasibleSpace
from searchkit.tabular import HWNASTable, NB201Table

PRESET = Path(__file__).resolve().parents[1] / "configs" / "nb201-cifar10.yaml"
PIXEL3 = {"device": "pixel3", "latency_ms": 7.5}


class Table:
    """A table holding results for ``datasets`` only."""

    def __init__(self, *datasets: str) -> None:
        self.datasets = datasets

    def dataset_for(self, name: str) -> str | None:
        return name if name in self.datasets else None


def cfg(**sections):
    return config_from_dict({"strategy": {"name": "auto"}, "budget": {"archs": 100}, "data": {"name": "cifar10"},
                             **sections})


def test_auto_is_evolution_without_a_constraint_or_an_affordable_validation():
    assert resolve_strategy(cfg(), lambda: Table("cifar10")).strategy == UNCONSTRAINED
    assert resolve_strategy(cfg(constraint=PIXEL3), lambda: None).strategy == UNCONSTRAINED  # validation would train
    assert resolve_strategy(cfg(constraint=PIXEL3, data={"name": "cifar10", "target": "cifar100"}),
                            lambda: Table("cifar10")).strategy == UNCONSTRAINED
    named = config_from_dict({"strategy": {"name": "random"}, "constraint": PIXEL3})
    assert resolve_strategy(named, lambda: Table("cifar10")) is named  # a named strategy stays


def test_auto_under_a_constraint_is_the_warmup_hybrid_with_a_training_budget():
    resolved = resolve_strategy(cfg(constraint=PIXEL3, budget={"archs": 100, "seconds": 60}), lambda: Table("cifar10"))
    assert resolved.strategy == CONSTRAINED and resolved.strategy.name == "warmup"
    assert resolved.metric == CONSTRAINED_METRIC and resolved.metric.name == "synflow"  # the benchmark row's screen
    assert resolve_strategy(cfg(), lambda: Table("cifar10")).metric.name == "kcc"  # unconstrained: the run's own
    assert (resolved.budget.archs, resolved.budget.seconds, resolved.budget.simulated_seconds) == (None, 60, SIMULATED_SECONDS)
    own = resolve_strategy(cfg(constraint=PIXEL3, budget={"simulated_seconds": 300}), lambda: Table("cifar10"))
    assert own.budget.simulated_seconds == 300
    trains = resolve_strategy(cfg(constraint=PIXEL3, validate={"method": "train"}), lambda: None)
    assert trains.strategy == CONSTRAINED
    with pytest.raises(SearchkitError, match="strategy auto takes no options"):
        resolve_strategy(cfg(strategy={"name": "auto", "options": {"population": 5}}), lambda: None)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.skipif(find_data("nb201/nb201_table.csv") is None or find_data("hwnas/hw_nas_bench_c10.csv") is None
                    or find_data("cifar10") is None, reason="needs ../shared/data (NB201, HW-NAS-Bench, CIFAR-10)")
def test_the_preset_with_a_constraint_runs_the_hybrid_and_records_it(tmp_path: Path):
    """The CIFAR-10 preset plus a tight constraint (tiny networks to keep it fast): the run screens
    every feasible cell with synflow, validates, records the resolved strategy, metric and budget,
    and selects a feasible cell."""
    result = run_search(PRESET, ["constraint={device: edgegpu, latency_ms: 2.6}", "space.build={C: 2, N: 1}",
                                 "data.batch_size=8", "budget.simulated_seconds=300"],
                        out=tmp_path / "run", progress=False)
    recorded = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert recorded["strategy"] == {"name": "warmup", "options": CONSTRAINED.options}
    assert recorded["metric"]["name"] == "synflow"
    feasible = FeasibleSpace(NB201Space(**NB201Space.search_defaults), TableCost(HWNASTable.load("cifar10"), "edgegpu"),
                             Constraint.of("edgegpu", "latency", 2.6))
    assert result.archs_scored == len(feasible.members) > 200  # the whole feasible set was screened
    assert recorded["budget"]["archs"] is None and recorded["budget"]["simulated_seconds"] == 300
    assert result.selected_by == "validation" and 0 < result.simulated_seconds <= 300 + 200
    index = NB201Table.load(find_data("nb201/nb201_table.csv")).index_of(result.arch)
    assert HWNASTable.load("cifar10").cost(index, "edgegpu") <= 2.6
