"""``searchkit benchmark``: strategies x metrics x seeds on a space with a tabular benchmark, with
shared scores.

Every run is an ordinary :func:`~searchkit.engine.run_search` in ``OUT/runs/<label>__<metric>__s<seed>/``
(:class:`~searchkit.study.runs.Study`; ``<label>__<metric>__<dataset>__s<seed>`` for a search for another
dataset than the config's: ``benchmark.datasets``, each run's ``data.target``, :func:`run_matrix`). Runs that score search a
:class:`~searchkit.spaces.pool.PoolSpace` of the benchmark's architectures so that training-free
scores are shared by every strategy and seed: scoring networks are initialised from the
benchmark's ``init_seed`` (not the run's seed), so a score depends only on the architecture and
the recipe. Training-based runs (metric ``validation``: table lookups only) and one-shot runs
(a supernet) search the whole space.

Scores live in the score store (``OUT/scores.db``, or ``--store PATH`` / ``store:`` shared with
other commands). The ``score_cache`` directories' exports are imported into it first (when their
recipe matches); then the pool's missing scores are computed (with ``--workers``/``--backend``: in
parallel, see :mod:`searchkit.workers`) before any run starts, so every run is served from the
store and charged the seconds each score took to compute.

Outputs: ``OUT/runs.csv`` (one row per run, appended as runs finish; a rerun, or ``--resume OUT``,
skips the rows already there and resumes an interrupted run from its history), ``OUT/summary.md``
and ``OUT/anytime.png`` (:mod:`searchkit.study.benchmark_report`), rewritten at most every :data:`REPORT_EVERY`
seconds and at the end (they read every run's history: rewritten after every run, a 120-run warm-up
tuning benchmark took 5 CPU-minutes for its first 50 runs and 20 for the last 70).

A ``benchmark.hardware`` section makes it the hardware-aware benchmark (:mod:`searchkit.study.hardware`):
the same pool and scores, every strategy under each latency budget, multi-objective strategies
per device.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import asdict
from pathlib import Path

import yaml
from tqdm import tqdm

from searchkit.config import RunConfig
from searchkit.correlate import sample_indices
from searchkit.engine import SearchResult
from searchkit.errors import SearchkitError
from searchkit.evaluation import target_dataset
from searchkit.metrics import parse_metric
from searchkit.rundir import check_writable, write_atomic
from searchkit.runtime import resolve_device, software_versions
from searchkit.scoring import ScoreRunner, ScoringContext, ScoringRecipe, import_scores
from searchkit.spaces import get_space
from searchkit.spaces.base import Benchmark
from searchkit.spaces.pool import PoolSpace
from searchkit.store import ScoreStore
from searchkit.spaces.base import SearchSpace
from searchkit.study.benchmark_config import (VALIDATION, BenchmarkConfig, StrategyEntry, load_benchmark_config, needs,
                                              run_config)
from searchkit.study.benchmark_report import REPORTED, plot_anytime, write_summary
from searchkit.study.curves import Curves
from searchkit.study.hardware import parse_hardware, run_hardware
from searchkit.study.runs import REPORT_EVERY, PlannedRun, Study, dirname
from searchkit.workers import Parallel

RUN_FIELDS = ("strategy", "metric", "dataset", "seed", "arch", "index", "selected_by", "score",
              *(f"{title}_test" for _, title in REPORTED), "wall_seconds", "simulated_seconds",
              "strategy_seconds", "archs_scored", "validations", "unique_archs", "run")


def benchmark_datasets(bench: BenchmarkConfig, base: RunConfig, table: Benchmark) -> dict[str, str]:
    """Every dataset named by the benchmark (``datasets``, the entries' own) -> the table's name for it;
    SearchkitError, one line, for a dataset the table has no results for."""
    names = {name for entry in bench.entries() for name in bench.datasets_of(entry, target_dataset(base))}
    unknown = sorted(name for name in names if table.dataset_for(str(name)) is None)
    if unknown:
        raise SearchkitError(f"benchmark.datasets: the {table.name} table has no results for {', '.join(map(repr, unknown))};"
                             f" name its datasets, e.g. cifar10, cifar100, ImageNet16-120")
    return {name: table.dataset_for(str(name)) for name in names}


def run_matrix(bench: BenchmarkConfig, base: RunConfig) -> list[tuple[StrategyEntry, str, int, str]]:
    """Every (strategy, metric spec, seed, dataset) of the benchmark, dataset innermost."""
    return [(entry, metric, seed, dataset) for entry, metric, seed in bench.runs()
            for dataset in bench.datasets_of(entry, target_dataset(base))]


def run_name(base: RunConfig, entry: StrategyEntry, metric: str, seed: int, dataset: str) -> str:
    """A run's directory name: ``<label>__<metric>__s<seed>`` for the config's own dataset (so the
    directories of a benchmark without ``datasets`` keep their names), with ``__<dataset>`` before
    the seed for another."""
    return dirname(entry.title, metric, *([] if dataset == target_dataset(base) else [dataset]), f"s{seed}")


def pool_metrics(bench: BenchmarkConfig, space: SearchSpace) -> dict:
    """Spec -> metric of every score the pool needs: the runs' metrics and their strategies'
    extra metrics, for the strategies that search the pool (not training-based or one-shot runs)."""
    specs: set[str] = set()
    for entry, metric, _ in bench.runs():
        wants = needs(entry)
        if metric != VALIDATION and not wants.gradient:
            specs.update((metric, *wants.extra_metrics))
    return {spec: parse_metric(spec) for spec in sorted(specs)}


def score_pool(base: RunConfig, bench: BenchmarkConfig, space: SearchSpace, table: Benchmark, context: ScoringContext,
               db: ScoreStore, parallel: Parallel, progress: bool) -> tuple[PoolSpace, list[str]]:
    """The benchmark's pool, its scores in ``db``: the ``score_cache`` exports imported (when their
    recipe matches), then the missing scores computed (unless ``scored_only``, which keeps the
    architectures already scored, or not ``prescore``, which leaves them to the runs). Returns (the
    pool, notes for the report)."""
    metrics = context.recipe.metrics
    notes = [import_scores(db, directory, context.recipe.setting()) for directory in bench.score_cache]
    indices = range(len(table)) if bench.pool.n is None else sample_indices(bench.pool.n, bench.pool.seed, len(table))
    texts = [table.arch_str(i) for i in indices]
    with ScoreRunner(context, db, parallel) as runner:
        if bench.pool.scored_only:
            texts = [t for t in texts if runner.stored(t) is not None]
        elif metrics and bench.pool.prescore:
            for _ in tqdm(runner.scores(texts), desc="pool scores", unit="arch", total=len(texts), disable=not progress):
                pass
    pool = PoolSpace(space, [space.decode(t) for t in texts])
    notes.append(f"pool: {len(pool.members)} architectures" + (
        f" (of {len(indices)}: those scored with {', '.join(metrics)})" if bench.pool.scored_only else
        "; the runs scored the members they asked for" if metrics and not bench.pool.prescore else ""))
    return pool, notes


def run_benchmark(config: str | Path, out: str | Path, seeds: int | None = None, progress: bool = True,
                  store: str | Path | None = None, parallel: Parallel = Parallel()) -> Path:
    """Run every (strategy, metric, seed, dataset) not yet in ``out/runs.csv``; write the reports. Returns ``out``.

    ``store``: the score store (None: the config's ``store``, else ``out/scores.db``); it is
    recorded in ``out/config.yaml``, which :func:`resume_benchmark` reads. ``parallel``: how the
    pool's missing scores are computed.
    """
    base, bench = load_benchmark_config(config)
    if seeds is not None:
        bench = bench.with_seeds(seeds)
    if store is not None:
        base = dataclasses.replace(base, store=str(store))
    space = get_space(base.space.name)
    table = space.benchmark(base.table)
    if table is None:
        raise SearchkitError(f"the benchmark needs a space with a tabular benchmark (its ground truth); "
                             f"the {base.space.name} space has none")
    out = Path(out)
    check_writable(out)
    hardware = parse_hardware(bench, space, base) if bench.hardware else None  # checked before anything is written
    datasets = benchmark_datasets(bench, base, table)
    metrics = pool_metrics(bench, space)
    context = ScoringRecipe.from_config(base, metrics, resolve_device(base.device)).open(space)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "config.yaml", yaml.safe_dump({**base.to_dict(), "benchmark": asdict(bench)}, sort_keys=False))
    with ScoreStore(base.store or out / "scores.db") as db:
        pool, notes = score_pool(base, bench, space, table, context, db, parallel, progress)
        notes.append(f"software: {software_versions()} (a Bayesian-optimisation row may take another path under "
                     "other botorch or gpytorch versions)")
        if set(datasets.values()) - {table.dataset_for(base.data.name)}:
            notes.append(f"training-free scores are {base.data.name} scores (the scoring batch's images) for every "
                         f"dataset searched for; a search for {', '.join(sorted(set(datasets.values())))} validates on "
                         "that dataset's own 12-epoch column and is read on its own test column")
        if hardware is not None:
            run_hardware(hardware, out, base, bench, pool, table, db, notes, progress)
            return out
        study = Study(out, RUN_FIELDS)
        planned = planned_runs(base, bench, table)
        study.run_all(planned, pool, db, lambda: report(study, base.name, notes, table, len(planned)),
                      REPORT_EVERY, progress)
    return out


def planned_runs(base: RunConfig, bench: BenchmarkConfig, table: Benchmark) -> list[PlannedRun]:
    """Every run of the benchmark's matrix (:func:`run_matrix`) with its config and how its row is made."""
    datasets = benchmark_datasets(bench, base, table)
    planned = []
    for entry, metric, seed, dataset in run_matrix(bench, base):
        name = run_name(base, entry, metric, seed, dataset)
        planned.append(PlannedRun(
            name, run_config(base, entry, metric, seed, dataset), metric != VALIDATION and not needs(entry).gradient,
            functools.partial(run_row, entry, metric, seed, datasets[dataset], name, table=table)))
    return planned


def run_row(entry: StrategyEntry, metric: str, seed: int, dataset: str, name: str, result: SearchResult,
            table: Benchmark) -> dict:
    """The ``runs.csv`` row of a finished run (``dataset``: the table's name of the dataset searched for)."""
    return {
        "strategy": entry.title, "metric": metric, "dataset": dataset, "seed": seed, "arch": result.arch,
        "index": result.index, "selected_by": result.selected_by, "score": repr(result.score),
        **{f"{title}_test": table.accuracy(result.index, column, "test", 200) for column, title in REPORTED},
        "wall_seconds": f"{result.search_seconds:.3f}", "simulated_seconds": f"{result.simulated_seconds:.3f}",
        "strategy_seconds": f"{result.strategy_seconds:.3f}", "archs_scored": result.archs_scored,
        "validations": result.validations, "unique_archs": result.unique_archs, "run": f"runs/{name}",
    }


def report(study: Study, name: str, notes: list[str], table: Benchmark, total: int) -> None:
    """``summary.md`` and ``anytime.png`` of the runs in ``runs.csv`` (``total`` planned)."""
    rows, curves = study.rows(), Curves(study.out)
    write_summary(study.out, name, rows, [*notes, f"runs finished: {len(rows)} of {total}"], table, curves)
    plot_anytime(study.out, rows, table, curves)


def resume_benchmark(out: str | Path, progress: bool = True, parallel: Parallel = Parallel()) -> Path:
    """Continue the benchmark in ``out`` with the config (and store) it recorded."""
    config = Path(out) / "config.yaml"
    if not config.is_file():
        raise SearchkitError(f"cannot resume {out}: no config.yaml there; pass the --out directory of an earlier "
                             "searchkit benchmark")
    return run_benchmark(config, out, progress=progress, parallel=parallel)
