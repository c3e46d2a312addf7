"""The hardware-aware benchmark (``benchmark.hardware``) on a tiny config: constrained and
multi-objective rows, their numbers recomputed from the run directories, the reports, resume."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fakes import benchmark_script
from searchkit.cli import main
from searchkit.hardware import Constraint, TableCost
from searchkit.front import found_front, front_points
from searchkit.pareto import hypervolume, reference_point
from searchkit.rundir import RunDir
from searchkit.study.curves import Fronts, front_pairs
from searchkit.paths import find_data
from searchkit.tabular import HWNASTable, NB201Table

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.skipif(
    find_data("hwnas/hw_nas_bench_c10.csv") is None or find_data("nb201/nb201_table.csv") is None
    or find_data("cifar10") is None, reason="needs ../shared/data (HW-NAS-Bench, NB201 table, CIFAR-10)")]

TINY = """
name: tiny-hw
init_seed: 0
data: {name: cifar10, batch_size: 8}
space: {name: nb201, build: {C: 2, N: 1}}
budget: {archs: 6}
validate: {method: table, epochs: 12}
evaluate: {method: table}
benchmark:
  seeds: 2
  pool: {n: 40, seed: 0}
  metrics: [params]
  hardware:
    budgets: [{label: edgegpu-mid, device: edgegpu, latency_ms: 4.4}]
    devices: [pixel3]
  strategies:
    - {name: random}
    - {name: warmup, options: {warmup: 6, population: 2, sample_size: 2}, budget: {archs: null, simulated_seconds: 300}}
    - {name: random, label: random-train, metrics: [validation], budget: {archs: null, simulated_seconds: 300}}
    - {name: nsga2, label: NSGA2, options: {population: 4}, budget: {archs: 12}}
"""


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_tiny_hardware_benchmark(tmp_path: Path, capsys) -> None:
    config = tmp_path / "bench.yaml"
    config.write_text(TINY)
    out = tmp_path / "out"
    assert main(["benchmark", "--config", str(config), "--out", str(out), "--quiet"]) == 0
    rows = read_csv(out / "runs.csv")
    assert sorted((r["target"], r["strategy"]) for r in rows) == sorted(
        [("edgegpu-mid", s) for s in ("random", "warmup", "random-train") for _ in range(2)] + [("pixel3", "NSGA2")] * 2)
    nb201, hw = NB201Table.load(find_data("nb201/nb201_table.csv")), HWNASTable.load("cifar10")
    test = nb201.column("cifar10", "test", 200)
    latency = TableCost(hw, "edgegpu").all_costs()[1]
    best = test[Constraint.of("edgegpu", "latency", 4.4).feasible(latency)].max()
    pixel3 = np.c_[test, hw.column("pixel3")]
    for row in rows:
        assert float(row["test"]) == test[int(row["index"])]
        if row["target"] == "edgegpu-mid":
            assert float(row["cost"]) == hw.cost(int(row["index"]), "edgegpu") <= 4.4
            assert float(row["best_feasible"]) == best
            assert float(row["gap"]) == pytest.approx(best - float(row["test"]), abs=1e-4)
        else:  # the hypervolume is recomputed from the run's front.csv against every cell
            front = front_points(read_csv(out / row["run"] / "front.csv"))
            assert len(front) == int(row["front_size"]) >= 1
            ref = reference_point(pixel3, 0.1)
            assert float(row["hv"]) == pytest.approx(hypervolume(front, ref) / hypervolume(pixel3, ref), abs=1e-4)
            assert 0 < float(row["hv_median_floor"]) <= float(row["hv"]) <= 1
        assert json.loads((out / row["run"] / "best.json").read_text())["hardware"]["device"] == row["device"]
    summary = (out / "summary.md").read_text()
    assert "| edgegpu-mid (edgegpu latency <= 4.4 ms) | cifar10 | random | params | 2 |" in summary
    assert f"| edgegpu-mid | edgegpu latency <= 4.4 ms | cifar10 | 6330 | {best:.2f} |" in summary
    assert "| pixel3 | cifar10 | NSGA2 | params | 2 |" in summary and "nadir (1.56, 25.94)" in summary
    warmup = [r for r in rows if r["strategy"] == "warmup"]  # one budget: its mean gap is the overall mean and worst
    gap = np.mean([float(r["gap"]) for r in warmup])
    simulated = np.mean([float(r["simulated_seconds"]) for r in warmup])
    assert f"| warmup | params | 1 | {gap:.2f} | {gap:.2f} | {int(gap <= 0.3)} | {simulated:.0f} |" in summary
    for plot in ("anytime_gap.png", "hypervolume.png", "fronts.png"):
        assert (out / plot).stat().st_size > 0
    # a rerun finds every row done: nothing is searched again
    before = (out / "runs.csv").read_text()
    assert main(["benchmark", "--resume", str(out), "--quiet"]) == 0
    assert (out / "runs.csv").read_text() == before
    check_stored_fronts(out, [r for r in rows if r["target"] == "pixel3"], pixel3)
    check_a_clone_reports_the_same(tmp_path, out)
    capsys.readouterr()


def check_stored_fronts(out: Path, rows: list[dict], points: np.ndarray) -> None:
    """fronts.csv's change points give the hypervolume of the front the history had after every answer."""
    ref = reference_point(points, 0.1)
    fronts = Fronts(out)
    for row in rows:
        history, stored = RunDir(out / row["run"]).read_history(), fronts.get(row["run"])
        assert {index for index, _ in stored[-1][2]} == {r.index for r in found_front(history)}
        wall = 0.0
        for k, answer in enumerate(history):
            wall += answer.seconds
            if answer.cached:
                continue
            then = [pairs for spent, _, pairs in stored if spent <= wall][-1]  # the front at this cost
            assert sorted(then) == sorted(front_pairs(found_front(history[:k + 1])))
        assert len(stored) < sum(not r.cached for r in history)  # change points only


def check_a_clone_reports_the_same(tmp_path: Path, out: Path) -> None:
    """A clone (no runs/) rewrites the same summary from curves.csv and fronts.csv; without them it
    says what it leaves out and keeps the plots it cannot draw, until a replay rebuilds them."""
    clone = tmp_path / "clone"
    shutil.copytree(out, clone, ignore=shutil.ignore_patterns("runs"))
    assert main(["benchmark", "--resume", str(clone), "--quiet"]) == 0
    assert (clone / "summary.md").read_text() == (out / "summary.md").read_text()
    (clone / "curves.csv").unlink()
    (clone / "fronts.csv").unlink()
    fronts = (clone / "fronts.png").read_bytes()
    assert main(["benchmark", "--resume", str(clone), "--quiet"]) == 0
    summary = (clone / "summary.md").read_text()
    assert "anytime: 4 of 4 constrained runs that validate have neither a curve" in summary
    assert "fronts: 2 of 2 multi-objective runs have neither a front" in summary
    assert (clone / "fronts.png").read_bytes() == fronts
    # benchmarks/replay_curves.py runs every run again: each matches its row, and the report comes back
    assert benchmark_script("replay_curves").main([str(clone)]) == 0
    assert (clone / "summary.md").read_text() == (out / "summary.md").read_text()
    stored, rows = Fronts(clone), read_csv(clone / "runs.csv")
    assert [stored.stored(r["run"]) for r in rows] == [bool(r["hv"]) for r in rows]  # multi-objective runs only


@pytest.mark.parametrize("section,fragment", [
    ("{budgets: [{device: pixel3, latency_ms: 3}]}", "budgets[0] must be a constraint with a label"),
    ("{budgets: [{label: a, device: pixel3, latency_ms: 0.001}]}", "infeasible constraint"),
    ("{devices: [tpu]}", "unknown constraint device 'tpu'"),
    ("{budgets: [{label: a, device: pixel3, latency_ms: 3, published: {HELP: high}}]}", "published must map a method"),
    ("{budgets: [{label: a, device: pixel3, latency_ms: 3, datasets: [mnist]}]}", "has no results for 'mnist'"),
    ("{budgets: [{label: pixel3, device: pixel3, latency_ms: 3}], devices: [pixel3]}", "distinct labels"),
])
def test_a_bad_hardware_section_is_one_line_and_writes_nothing(tmp_path: Path, capsys, section: str, fragment: str) -> None:
    config = tmp_path / "bench.yaml"
    config.write_text(TINY.replace("""    budgets: [{label: edgegpu-mid, device: edgegpu, latency_ms: 4.4}]
    devices: [pixel3]""", "").replace("  hardware:\n", f"  hardware: {section}\n"))
    out = tmp_path / "out"
    assert main(["benchmark", "--config", str(config), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err and not out.exists()


CIFAR100 = TINY.replace("""    budgets: [{label: edgegpu-mid, device: edgegpu, latency_ms: 4.4}]
    devices: [pixel3]""", """    budgets: [{label: fpga-5, device: fpga, latency_ms: 5, datasets: [cifar100], published: {HELP: 71.8}}]""").replace(
    "    - {name: nsga2, label: NSGA2, options: {population: 4}, budget: {archs: 12}}\n", "")


def test_a_cifar100_constrained_search_validates_on_cifar100_and_stays_feasible(tmp_path: Path, capsys) -> None:
    """A budget for CIFAR-100 (HELP's FPGA 5 ms): every validation is CIFAR-100's 12-epoch accuracy,
    every selected cell meets the budget on HW-NAS-Bench's CIFAR-100 table, and the gap is taken to
    the best feasible cell of CIFAR-100's test column."""
    config = tmp_path / "bench.yaml"
    config.write_text(CIFAR100)
    out = tmp_path / "out"
    assert main(["benchmark", "--config", str(config), "--out", str(out), "--quiet"]) == 0
    rows = read_csv(out / "runs.csv")
    assert sorted(r["strategy"] for r in rows) == sorted(["random", "warmup", "random-train"] * 2)
    nb201, hw = NB201Table.load(find_data("nb201/nb201_table.csv")), HWNASTable.load("cifar100")
    test = nb201.column("cifar100", "test", 200)
    latency = TableCost(hw, "fpga").all_costs()[1]
    best = test[Constraint.of("fpga", "latency", 5).feasible(latency)].max()
    assert best != nb201.column("cifar10", "test", 200)[Constraint.of("fpga", "latency", 5).feasible(latency)].max()
    validated = 0
    for row in rows:
        assert row["dataset"] == "cifar100" and row["run"].endswith(f"__fpga-5__cifar100__s{row['seed']}")
        assert float(row["test"]) == test[int(row["index"])]
        assert float(row["cost"]) == hw.cost(int(row["index"]), "fpga") <= 5
        assert float(row["best_feasible"]) == best
        assert float(row["gap"]) == pytest.approx(best - float(row["test"]), abs=1e-4)
        history = RunDir(out / row["run"]).read_history()
        for r in history:
            assert hw.cost(nb201.index_of(r.arch), "fpga") <= 5  # no query leaves the budget
            if r.kind == "validate":
                validated += 1
                assert r.score == nb201.accuracy(nb201.index_of(r.arch), "cifar100", "valid", 12)
    assert validated > 0
    summary = (out / "summary.md").read_text()
    assert "| fpga-5 (fpga latency <= 5 ms) | cifar100 | warmup | params | 2 |" in summary
    assert "datasets searched for: cifar100 (" in summary
    verdict = next(line for line in summary.splitlines() if line.startswith("| fpga-5 | fpga latency <= 5 ms | cifar100 |"))
    assert f"| {best:.2f} |" in verdict and verdict.endswith("| HELP 71.80 (not above) |")  # a 40-cell pool: below HELP
    capsys.readouterr()
