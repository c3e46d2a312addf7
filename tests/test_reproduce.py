"""Committed results reproduce from their committed exports: correlate rows rescored, and benchmark
rows rerun from a store seeded with the committed score caches, give the committed values."""
import csv
from pathlib import Path

import pytest
import yaml

from searchkit.correlate import read_scores
from searchkit.paths import find_data
from searchkit.scoring import ScoringRecipe
from searchkit.study.benchmark import run_benchmark

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.skipif(find_data("nb201/nb201_table.csv") is None or find_data("cifar10") is None,
                                 reason="needs ../shared/data (NB201 table and CIFAR-10)")]


def test_committed_correlate_rows_reproduce():
    """Three architectures of the n = 1000 study, rescored with the recipe of its settings.yaml."""
    directory = ROOT / "results" / "correlation" / "zero_cost"
    settings = yaml.safe_load((directory / "settings.yaml").read_text())
    recipe = ScoringRecipe.from_dict({**settings, "metrics": ["params", "naswot", "synflow"]})
    context = recipe.open()
    assert context.recipe.batch_fingerprint == settings["batch_fingerprint"]  # the same scoring batch
    committed = read_scores(directory / "scores.csv")
    for index in list(committed)[:3]:
        text = context.space.benchmark().arch_str(index)
        result, _ = context.score(text)
        assert result["params"][0] == committed[index]["params"]
        for label in ("naswot", "synflow"):
            assert result[label][0] == pytest.approx(committed[index][label], rel=1e-9), (index, label)


BENCH = """
name: reproduce
seed: 0
init_seed: 0
device: cpu
data: {{name: cifar10, batch_size: 64, split: train, seed: 0}}
space: {{name: nb201, build: {{C: 16, N: 5}}}}
budget: {{archs: 100}}
validate: {{method: table, epochs: 12}}
evaluate: {{method: table}}
benchmark:
  seeds: 1
  pool: {{n: 1000, seed: 0, scored_only: true}}
  score_cache: [{root}/results/benchmark-nb201-before/pool-scores, {root}/results/correlation/ntk,
                {root}/results/correlation/zero_cost]
  metrics: [naswot]
  strategies:
    - {{label: random, name: random}}
    - {{label: REA, name: evolution, options: {{population: 20, sample_size: 5}}, metrics: [synflow]}}
    - {{label: HNAS, name: hnas, options: {{pool: 200, growth: 0, revisit: true, iterations: 25, init: 3}},
        metrics: [ntk_trace],
        budget: {{archs: null, simulated_seconds: 1000}}}}
    - {{label: warmup, name: warmup, options: {{warmup: 500, population: 10, sample_size: 3}}, metrics: [synflow],
        budget: {{archs: null, simulated_seconds: 1000}}}}
"""


def rows(path: Path) -> dict[tuple[str, str, str], dict]:
    with path.open(newline="") as handle:
        return {(r["strategy"], r["metric"], r["seed"]): r for r in csv.DictReader(handle)}


def test_committed_benchmark_rows_reproduce_from_the_store(tmp_path):
    config = tmp_path / "bench.yaml"
    config.write_text(BENCH.format(root=ROOT))
    out = run_benchmark(config, tmp_path / "out", progress=False)
    committed = rows(ROOT / "results" / "benchmark-nb201-before" / "runs.csv")
    again = rows(out / "runs.csv")
    assert len(again) == 4
    for key, row in again.items():
        before = committed[key]
        for column in ("arch", "index", "selected_by", "C10_test", "C100_test", "IN16_test", "archs_scored",
                       "validations", "unique_archs", "simulated_seconds"):
            assert row[column] == before[column], (key, column)
        assert float(row["wall_seconds"]) == pytest.approx(float(before["wall_seconds"]), abs=0.01)
    assert not list((out / "runs").glob("*/scores.db"))  # every run was served by the benchmark's store
