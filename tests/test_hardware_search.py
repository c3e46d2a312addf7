"""Hardware-aware search end to end: the cost capability of spaces, constrained runs of every
strategy, the one-line errors (infeasible budget, missing Edge TPU measurement), the nsga2 front
against a brute-force front, NASI's penalty and constrained decoding."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from searchkit.cli import main
from searchkit.config import BudgetConfig
from searchkit.driver import Driver
from searchkit.engine import run_search
from searchkit.errors import SearchkitError
from searchkit.front import found_front
from searchkit.hardware import AdditiveCost, Constraint, MeasuredLatency, TableCost
from searchkit.paths import find_data
from searchkit.rundir import HistoryRow
from searchkit.spaces import NB201Space, get_space
from searchkit.spaces.constrained import FeasibleSpace
from searchkit.spaces.nb201 import OPS
from searchkit.spaces.pool import PoolSpace
from searchkit.strategies import get_strategy
from searchkit.strategies.base import COST
from searchkit.strategies.nasi import _Budget
from searchkit.strategies.nsga2 import NSGA2
from searchkit.tabular import HWNASTable
from fakes import FakeOracle

pytestmark = pytest.mark.usefixtures("one_thread")

HW = find_data("hwnas/hw_nas_bench_c10.csv")
needs_hw = pytest.mark.skipif(HW is None, reason="needs ../shared/data/hwnas")
needs_data = pytest.mark.skipif(HW is None or find_data("nb201/nb201_table.csv") is None or find_data("cifar10") is None,
                                reason="needs ../shared/data (HW-NAS-Bench, NB201 table, CIFAR-10)")
SPACE = NB201Space()
TINY = {"data": {"name": "cifar10", "batch_size": 8}, "space": {"name": "nb201", "build": {"C": 2, "N": 1}},
        "metric": {"name": "params"}, "init_seed": 0, "budget": {"archs": 12}, "evaluate": {"method": "table"}}
#: a tight pixel3 budget: about a tenth of NB201 meets it (results/hardware-aware/budgets.md)
TIGHT = {"device": "pixel3", "latency_ms": 3.3}
#: (strategy, options, budget, metric): every strategy, and the training-based ones (metric validation)
STRATEGIES = [
    ("random", {}, {}, "params"),
    ("evolution", {"population": 4, "sample_size": 2}, {}, "params"),
    ("local", {}, {}, "params"),
    ("warmup", {"warmup": 6, "population": 3, "sample_size": 2}, {"archs": None, "simulated_seconds": 400}, "params"),
    ("hnas", {"pool": 6, "iterations": 2, "init": 2, "grid": 4, "growth": 0}, {"archs": None, "simulated_seconds": 1e6},
     "params"),
    ("nsga2", {"population": 4}, {}, "params"),
    ("nsga2", {"population": 4, "generations": 1, "validate": True}, {"archs": None, "simulated_seconds": 400}, "params"),
    ("nasi", {"steps": 2, "nu_samples": 2, "batch_size": 8}, {}, "ntk_trace"),  # a one-shot search: differentiable
    ("random", {}, {"archs": None, "simulated_seconds": 300}, "validation"),
    ("nsga2", {"population": 3}, {"archs": None, "simulated_seconds": 500}, "validation"),
]


@pytest.fixture(scope="module")
def c10() -> HWNASTable:
    return HWNASTable.load("cifar10")


def brute_front(points: list[tuple[float, float]]) -> set[int]:
    """Indices of the points no other point dominates (score max, cost min), by exhaustive comparison."""
    return {i for i, (s, c) in enumerate(points)
            if not any(t >= s and d <= c and (t > s or d < c) for t, d in points)}


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


# ------------------------------------------------------------------ the cost capability
@needs_hw
def test_spaces_offer_their_cost_models(c10: HWNASTable) -> None:
    text = c10.arch_str(1234)
    for dataset in ("cifar10", "cifar10-valid"):
        model = SPACE.cost_model("pixel3", "latency", dataset)
        assert isinstance(model, TableCost) and model.cost(text) == c10.cost(1234, "pixel3")
    assert SPACE.cost_model("pixel3", "latency", "cifar10") is model  # loaded once per space
    pool = PoolSpace(SPACE, [SPACE.decode(c10.arch_str(i)) for i in (0, 1234)])
    assert pool.cost_model("fpga", "energy", "cifar10").cost(text) == c10.cost(1234, "fpga", "energy")
    cpu = pool.cost_model("cpu", "latency", num_classes=3, input_shape=(3, 8, 8), repeats=1, warmup=0,
                          build={"C": 2, "N": 1})
    assert isinstance(cpu, MeasuredLatency) and cpu.cost(text) > 0 and cpu.charge(text) > 0
    assert model.charge(text) == 0.0
    with pytest.raises(SearchkitError, match="not 'digits'; use device: cpu"):
        SPACE.cost_model("pixel3", "latency", "digits")
    with pytest.raises(SearchkitError, match="only latency can be measured on cpu"):
        get_space("darts").cost_model("cpu", "energy")


# ------------------------------------------------------------------ constrained runs of every strategy
@needs_data
@pytest.mark.parametrize("name,options,budget,metric", STRATEGIES, ids=[
    f"{s[0]}{'-hybrid' if s[1].get('validate') else ''}-{s[3]}" for s in STRATEGIES])
def test_every_strategy_keeps_to_the_budget(tmp_path: Path, c10: HWNASTable, name: str, options: dict,
                                           budget: dict, metric: str) -> None:
    config = {**TINY, "strategy": {"name": name, "options": options}, "constraint": TIGHT,
              "budget": {**TINY["budget"], **budget}, "metric": {"name": metric}}
    result = run_search(config, out=tmp_path / "run", progress=False)
    best = json.loads((tmp_path / "run" / "best.json").read_text())["hardware"]
    assert best["cost"] == c10.cost(result.arch, "pixel3") <= 3.3 and best["feasible"] is True
    assert best["constraint"] == TIGHT and result.hardware == best
    for row in result.history:  # every answer carries its cost, and every queried cell meets the budget
        assert row.extras[COST] == c10.cost(row.arch, "pixel3") <= 3.3
    if name == "nsga2":  # the front file is the non-dominated set of the answers it is selected from
        rows = read_csv(tmp_path / "run" / "front.csv")
        validated = [r for r in result.history if r.kind == "validate" and not r.cached]
        candidates = validated or [r for r in result.history if not r.cached]
        brute = brute_front([(r.score, r.extras[COST]) for r in candidates])
        assert {r["arch"] for r in rows} == {candidates[i].arch for i in brute} and (tmp_path / "run" / "front.png").stat().st_size > 0
        assert [float(r["cost"]) for r in rows] == sorted(float(r["cost"]) for r in rows)


@needs_data
def test_a_constrained_multi_objective_run_resumes_to_the_same_front(tmp_path: Path) -> None:
    import shutil

    config = {**TINY, "strategy": {"name": "nsga2", "options": {"population": 4}}, "constraint": TIGHT,
              "budget": {"archs": 14}}
    full = run_search(config, out=tmp_path / "full", progress=False)
    partial = tmp_path / "partial"
    shutil.copytree(tmp_path / "full", partial)
    for name in ("best.json", "front.csv", "front.png"):
        (partial / name).unlink()
    lines = (partial / "history.csv").read_text().splitlines(keepends=True)
    (partial / "history.csv").write_text("".join(lines[:7]))  # 6 rows answered before the "kill"
    resumed = run_search(resume=partial, progress=False)
    assert [(r.arch, r.extras) for r in resumed.history] == [(r.arch, r.extras) for r in full.history]
    assert resumed.arch == full.arch and resumed.hardware == full.hardware
    assert (partial / "front.csv").read_text() == (tmp_path / "full" / "front.csv").read_text()


@needs_hw
@pytest.mark.parametrize("name,options", [("random", {}), ("evolution", {"population": 5, "sample_size": 2}),
                                          ("local", {}), ("nsga2", {"population": 6})])
def test_no_selected_architecture_ever_violates_the_budget(c10: HWNASTable, name: str, options: dict) -> None:
    """Property over seeds and budgets: strategies on the constrained space, driven by the real driver
    on a synthetic score, never query (so never select) a cell over the budget."""
    model = TableCost(c10, "edgegpu")
    for seed, limit in zip(range(10), np.linspace(2.0, 6.0, 10)):
        space = FeasibleSpace(SPACE, model, Constraint.of("edgegpu", "latency", float(limit)))
        strategy = get_strategy(name, space, np.random.default_rng(seed), **options)
        score = FakeOracle("score", lambda a: float(sum(op != "none" for op in a.ops)),
                           extras=lambda a: {COST: model.cost(SPACE.encode(a))})
        log = Driver(strategy, space, {"score": score}, BudgetConfig(archs=40)).run()
        assert all(model.cost(row.arch) <= limit for row in log.history)
        assert model.cost(log.incumbent.arch) <= limit


@needs_hw
def test_the_feasible_set_keeps_to_the_space_options(c10: HWNASTable) -> None:
    """A search space that leaves degenerate cells out keeps them out under a budget too; the
    infeasible-budget message then names the fastest cell the search could use."""
    from searchkit.spaces.nb201 import is_degenerate

    model = TableCost(c10, "pixel3")
    space = NB201Space(exclude_degenerate=True)
    feasible = FeasibleSpace(space, model, Constraint.of("pixel3", "latency", 3.3))
    everything = FeasibleSpace(SPACE, model, Constraint.of("pixel3", "latency", 3.3))
    assert set(feasible.members) == {a for a in everything.members if not is_degenerate(a)} != set(everything.members)
    fastest = min(model.cost(SPACE.encode(a)) for a in everything.members if not is_degenerate(a))
    with pytest.raises(SearchkitError, match=f"the fastest takes {fastest:.4g} ms"):
        FeasibleSpace(space, model, Constraint.of("pixel3", "latency", 0.5))


# ------------------------------------------------------------------ one-line errors, nothing written
@needs_data
@pytest.mark.parametrize("overrides,fragment", [
    (["constraint={device: pixel3, latency_ms: 0.5}"],
     "infeasible constraint latency_ms: 0.5: no NB201 cell runs within 0.5 ms on pixel3; the fastest takes"),
    (["strategy.name=nsga2", "hardware.device=edgetpu"], "HW-NAS-Bench has no edgetpu latency for NB201 architecture"),
    (["constraint={device: pixel3, latency_ms: 5, energy_mj: 2}"], "constraint has both latency_ms and energy_mj"),
    (["constraint={device: pixel3, energy_mj: 2}"], "HW-NAS-Bench has no energy on pixel3"),
    (["constraint={device: tpu, latency_ms: 2}"], "unknown constraint device 'tpu'"),
    (["strategy.name=nsga2"], "strategy 'nsga2' needs a hardware cost: set hardware.device"),
    (["constraint={device: pixel3, latency_ms: 5}", "hardware.device=edgegpu"], "differ from the constraint's"),
])
def test_bad_hardware_input_is_one_line_exit_2_and_writes_nothing(capsys, tmp_path: Path, overrides: list,
                                                                  fragment: str) -> None:
    out = tmp_path / "run"
    argv = ["search", "--quiet", "--out", str(out), "data.name=cifar10", "data.batch_size=8", "space.build={C: 2, N: 1}",
            "metric.name=params", "budget.archs=4", "evaluate.method=table", *overrides]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("searchkit: error: ") and fragment in err
    assert not out.exists()


@needs_data
def test_a_search_prints_the_cost_and_the_front(capsys, tmp_path: Path) -> None:
    argv = ["search", "--quiet", "--out", str(tmp_path / "run"), "data.name=cifar10", "data.batch_size=8",
            "space.build={C: 2, N: 1}", "metric.name=params", "budget.archs=8", "evaluate.method=table",
            "strategy.name=nsga2", "strategy.options={population: 4}", "constraint.device=edgegpu",
            "constraint.latency_ms=4.4"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "ms latency on edgegpu (constraint: <= 4.4 ms)" in out and "front.csv (plot: front.png)" in out


def test_measured_latency_constrains_a_space_without_a_table(tmp_path: Path, monkeypatch) -> None:
    """device: cpu: latency measured on this machine (rejection-sampled feasible space), its
    measuring time charged once per architecture."""
    from functools import partial

    from searchkit import budget

    monkeypatch.setattr(budget, "FeasibleSpace", partial(FeasibleSpace, max_tries=20))
    config = {"data": {"name": "synthetic", "batch_size": 8, "options": {"shape": [3, 8, 8], "n_train": 32}},
              "space": {"name": "nb201", "build": {"C": 2, "N": 1}}, "metric": {"name": "params"},
              "strategy": {"name": "random"}, "budget": {"archs": 5}, "evaluate": {"method": "none"},
              "constraint": {"device": "cpu", "latency_ms": 1000.0}, "hardware": {"repeats": 2, "warmup": 0}}
    result = run_search(config, out=tmp_path / "run", progress=False)
    assert all(0 < row.extras[COST] <= 1000.0 for row in result.history)
    assert result.hardware["device"] == "cpu" and result.hardware["cost"] > 0
    with pytest.raises(SearchkitError, match="no NB201 cell among 20 samples meets cpu latency <= 1e-06 ms"):
        run_search({**config, "constraint": {"device": "cpu", "latency_ms": 1e-6}, "hardware": {"repeats": 1, "warmup": 0}},
                   out=tmp_path / "run2", progress=False)
    assert not (tmp_path / "run2").exists()


# ------------------------------------------------------------------ nsga2 against brute force
def _synthetic(arch) -> tuple[float, float]:
    """A score and a cost that trade off: convolutions raise both (ties broken by edge position)."""
    weight = {"none": 0.0, "skip_connect": 0.2, "avg_pool_3x3": 0.3, "nor_conv_1x1": 1.0, "nor_conv_3x3": 2.0}
    value = sum(weight[op] * (1 + 0.01 * k) for k, op in enumerate(arch.ops))
    cost = sum(weight[op] ** 1.5 * (1 + 0.02 * (5 - k)) for k, op in enumerate(arch.ops))
    return value, cost


def test_nsga2_finds_the_brute_force_front_of_a_small_set() -> None:
    rng = np.random.default_rng(0)
    members = list(dict.fromkeys(SPACE.sample(rng) for _ in range(60)))
    pool = PoolSpace(SPACE, members)
    true_front = {members[i] for i in brute_front([_synthetic(a) for a in members])}
    strategy = NSGA2(pool, np.random.default_rng(1), population=len(true_front) + 4)
    score = FakeOracle("score", lambda a: _synthetic(a)[0], extras=lambda a: {COST: _synthetic(a)[1]})
    log = Driver(strategy, pool, {"score": score}, BudgetConfig(archs=2000)).run()
    queried = [r for r in log.history if not r.cached]
    brute = {queried[i].arch for i in brute_front([(r.score, r.extras[COST]) for r in queried])}
    assert {r.arch for r in found_front(log.history)} == brute
    assert {SPACE.decode(t) for t in brute} == true_front  # every pool member was reached and the front is exact
    assert {a for a, _ in strategy.population.front()} == true_front  # the population holds the front


def test_nsga2_is_deterministic_and_refuses_bad_options() -> None:
    def run(seed: int) -> list[str]:
        strategy = NSGA2(SPACE, np.random.default_rng(seed), population=6, generations=3)
        score = FakeOracle("score", lambda a: _synthetic(a)[0], extras=lambda a: {COST: _synthetic(a)[1]})
        return [r.arch for r in Driver(strategy, SPACE, {"score": score}, BudgetConfig(archs=1000)).run().history]

    first = run(0)
    assert first == run(0) != run(1) and len(set(first)) <= 6 * 4  # initial population + 3 generations
    with pytest.raises(SearchkitError, match="needs generations"):
        NSGA2(SPACE, np.random.default_rng(0), validate=True)
    with pytest.raises(SearchkitError, match="population >= 2"):
        NSGA2(SPACE, np.random.default_rng(0), population=1)


def test_found_front_keeps_scored_cells_no_validated_cell_dominates_and_skips_repeats() -> None:
    def row(step, arch, value, cost, kind="score", cached=False):
        return HistoryRow(step, arch, None, value, 0.0, cached, kind, extras={COST: cost})

    history = [row(0, "a", 1.0, 1.0), row(1, "b", 2.0, 2.0), row(2, "c", 0.5, 3.0), row(3, "b", 2.0, 2.0, cached=True)]
    assert [r.arch for r in found_front(history)] == ["a", "b"]
    history += [row(4, "c", 90.0, 3.0, "validate"), row(5, "a", 80.0, 1.0, "validate"), row(6, "d", 70.0, 2.0, "validate")]
    # the validated front (a, c) and the scored front's b, which no validated cell dominates
    assert [(r.arch, r.kind) for r in found_front(history)] == [("a", "validate"), ("b", "score"), ("c", "validate")]
    assert found_front([row(0, "z", float("-inf"), 1.0)]) == []


# ------------------------------------------------------------------ NASI under a budget
def test_nasi_penalty_is_the_relative_hinge_on_the_additive_cost() -> None:
    weights = np.zeros((6, 5))
    weights[:, OPS.index("nor_conv_3x3")] = 1.0
    budget = _Budget(AdditiveCost(weights, 0.5, 1.0, 0.0), limit=2.0, mu=1.0)
    conv = torch.zeros(6, 5)
    conv[:, OPS.index("nor_conv_3x3")] = 1.0  # cost 6.5: 3.25x the limit
    value = torch.tensor(10.0, requires_grad=True)
    penalised = budget.penalised(value, conv.requires_grad_())
    assert float(penalised.detach()) == pytest.approx(10.0 - 10.0 * (6.5 / 2.0 - 1.0))
    penalised.backward()
    assert conv.grad[0, OPS.index("nor_conv_3x3")] == pytest.approx(-10.0 / 2.0)  # d/dw of -|R| c / L
    cheap = torch.zeros(6, 5)
    cheap[:, OPS.index("skip_connect")] = 1.0  # cost 0.5: within budget, no penalty
    assert float(budget.penalised(torch.tensor(10.0), cheap)) == 10.0


@needs_hw
def test_nasi_decodes_the_most_likely_feasible_cell(c10: HWNASTable) -> None:
    space = FeasibleSpace(SPACE, TableCost(c10, "pixel3"), Constraint.of("pixel3", "latency", 3.3))
    nasi = get_strategy("nasi", space, np.random.default_rng(0))
    assert nasi.budget is not None and nasi.budget.limit == 3.3 and nasi.budget.model.r2 > 0.8
    net = SPACE.supernet()(10, C=2, N=1)
    net.exclude_ops(["none"])
    delta = torch.zeros(6, 5)
    delta[:, OPS.index("nor_conv_3x3")] = 1.0  # all-conv: far over the budget
    arch = nasi.derive(net, delta)
    assert space.is_feasible(arch) and "none" not in arch.ops
    cheap = torch.zeros(6, 5)
    cheap[:, OPS.index("skip_connect")] = 1.0
    assert nasi.derive(net, cheap) == net.derive(cheap)  # a feasible argmax is kept
    assert get_strategy("nasi", SPACE, np.random.default_rng(0)).budget is None


def test_front_plot_legend_counts_what_it_marks(tmp_path: Path) -> None:
    """Issue 29: front.png called the cloud of every cell of the space "searched cells"."""
    from types import SimpleNamespace

    from searchkit.front import plot_front, queried_rows
    from searchkit.pareto import pareto_front

    rng = np.random.default_rng(0)
    truth = np.c_[rng.uniform(80, 95, 50), rng.uniform(1, 10, 50)]  # (accuracy, cost) of 50 cells
    accuracy = truth[:, 0]
    history = [HistoryRow(step, f"a{i}", i, float(accuracy[i]), 0.0, False, extras={COST: float(truth[i, 1])})
               for step, i in enumerate([3, 7, 7, 11])]  # a{7} answered twice: one queried cell
    front = found_front(history)
    cost = SimpleNamespace(device="pixel3", quantity="latency", unit="ms")
    labels = plot_front(tmp_path / "front.png", front, cost, accuracy, truth, queried_rows(history))
    assert labels == ["every cell of the space (50)", f"true front ({len(pareto_front(truth))} cells)",
                      "cells the run queried (3)", f"found front ({len(front)})"]
    assert (tmp_path / "front.png").stat().st_size > 0


#: the fastest of three re-measurements of the answer may exceed the budget by this factor (README,
#: "Hardware-aware search": timings of millisecond networks on a shared 2-core machine vary with its load)
REMEASURE_TOLERANCE = 1.5


def test_a_darts_search_under_a_measured_latency_budget_respects_it(tmp_path: Path) -> None:
    """Issue 26 ask 6: a DARTS search under a cpu latency budget set at the median of 8 sampled
    cells' measured latency (so it binds): every queried cell's recorded latency meets it, the
    answer's too, and the fastest of three fresh re-measurements of the answer stays within
    REMEASURE_TOLERANCE of the budget (or of the budget re-derived the same way now, if the
    machine got slower)."""
    from searchkit.spaces.darts import DartsSpace

    space, build, measure = DartsSpace(), {"C": 2, "layers": 2}, {"warmup": 1, "repeats": 5}
    probe = MeasuredLatency(space, num_classes=10, input_shape=(3, 8, 8), build=build, **measure)
    rng = np.random.default_rng(0)
    cells = [space.encode(space.sample(rng)) for _ in range(8)]
    limit = float(np.median([probe.cost(text) for text in cells]))
    config = {"data": {"name": "synthetic", "batch_size": 8, "options": {"shape": [3, 8, 8], "n_train": 32}},
              "space": {"name": "darts", "build": build}, "metric": {"name": "params"}, "strategy": {"name": "random"},
              "budget": {"archs": 4}, "evaluate": {"method": "none"},
              "constraint": {"device": "cpu", "latency_ms": limit}, "hardware": measure}
    result = run_search(config, out=tmp_path / "run", progress=False)
    assert all(row.extras[COST] <= limit for row in result.history) and result.hardware["cost"] <= limit
    again = [MeasuredLatency(space, num_classes=10, input_shape=(3, 8, 8), build=build, warmup=2, repeats=15)
             for _ in range(3)]  # the fastest of 3 fresh measurements: load spikes only slow a timing down

    def fastest(text: str) -> float:
        return min(model.cost(text) for model in again)

    answer = fastest(result.arch)  # beside the budget re-derived now, from the same cells, under the same load
    assert answer <= REMEASURE_TOLERANCE * max(limit, float(np.median([fastest(text) for text in cells])))
