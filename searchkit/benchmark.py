"""``searchkit benchmark``: strategies x metrics x seeds on NAS-Bench-201, with shared scores.

Every run is an ordinary :func:`~searchkit.engine.run_search` (its run directory under
``OUT/runs/``). Runs that score search a :class:`PoolSpace` of NB201 architectures so that
training-free scores are shared by every strategy and seed: scoring networks are initialised
from the benchmark's ``init_seed`` (not the run's seed), so a score depends only on the
architecture, the metric and the scoring settings. Training-based runs (metric ``validation``:
table lookups only) and one-shot runs (NASI's supernet) search all of NB201.

Scores live in the score store (``OUT/scores.db``, or ``--store PATH`` / ``store:`` shared
with other commands). It is first seeded from the ``searchkit correlate`` output directories
listed under ``score_cache:`` whose settings match; then the pool's missing scores are computed
(with ``--workers``/``--backend``: in parallel, see :mod:`searchkit.workers`) before any run
starts, so every run is served from the store and charged the seconds each score took to compute.

Outputs: ``OUT/runs.csv`` (one row per run, appended as runs finish; a rerun, or ``--resume
OUT``, skips the rows already there and resumes an interrupted run from its history),
``OUT/summary.md`` (mean +- std
over seeds of the selected architecture's 200-epoch test accuracy on CIFAR-10, CIFAR-100 and
ImageNet16-120 and the mean search cost, beside the published rows of seed 003, table 3) and
``OUT/anytime.png`` (best-so-far CIFAR-10 test accuracy against search cost).
"""
from __future__ import annotations

import csv
import dataclasses
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from tqdm import tqdm

from searchkit.config import RunConfig, build_section, config_from_dict, load_config
from searchkit.correlate import ScoreFile, parse_metric_spec, resolve_kind, sample_indices
from searchkit.engine import VALIDATION, run_search
from searchkit.errors import SearchkitError
from searchkit.metrics import get_metric
from searchkit.runtime import canonical_build, resolve_device
from searchkit.spaces.nb201 import NUM_ARCHS, OPS, NB201Arch, NB201Space
from searchkit.store import (HistoryRow, RunDir, ScoreSetting, ScoreStore, canonical_json, complete_lines,
                             metric_key, write_atomic)
from searchkit.strategies.hnas import KAPPA_METRIC
from searchkit.tabular import NB201Table
from searchkit.workers import Parallel, ScoreRunner, ScoringRecipe

#: (table dataset, column title) of the accuracies reported per run.
REPORTED = (("cifar10", "C10"), ("cifar100", "C100"), ("ImageNet16-120", "IN16"))

#: Seed 003 (Shu et al. 2022), table 3: (name, C10, C100, IN16 test accuracy "mean+-std", cost in GPU seconds).
PUBLISHED = (
    ("REA", "93.92 ± 0.30", "71.84 ± 0.99", "45.15 ± 0.89", "12000"),
    ("RS (w/o sharing)", "93.70 ± 0.36", "71.04 ± 1.07", "44.57 ± 1.25", "12000"),
    ("NASWOT", "92.96 ± 0.81", "69.98 ± 1.22", "44.44 ± 2.10", "306"),
    ("TE-NAS", "93.90 ± 0.47", "71.24 ± 0.56", "42.38 ± 0.46", "1558"),
    ("NASI", "93.55 ± 0.10", "71.20 ± 0.14", "44.84 ± 1.41", "120"),
    ("HNAS (M_Grad)", "94.04 ± 0.21", "71.75 ± 1.04", "45.91 ± 0.88", "3010"),
    ("HNAS (M_Trace)", "94.07 ± 0.10", "72.30 ± 0.70", "45.93 ± 0.37", "3006"),
    ("optimal", "94.37", "73.51", "47.31", "-"),
)

RUN_FIELDS = ("strategy", "metric", "seed", "arch", "index", "selected_by", "score",
              *(f"{title}_test" for _, title in REPORTED), "wall_seconds", "simulated_seconds",
              "strategy_seconds", "archs_scored", "validations", "unique_archs", "run")


@dataclass
class StrategyEntry:
    """One strategy of the benchmark: registry ``name``, ``label`` in the tables, its ``options``,
    the ``metrics`` it runs with (None: the benchmark's list; ``validation`` for a training-based
    search) and ``budget`` keys overriding the shared config's."""

    name: str = "random"
    label: str | None = None
    options: dict = field(default_factory=dict)
    metrics: list | None = None
    budget: dict = field(default_factory=dict)


@dataclass
class PoolConfig:
    """The architectures searched: ``n`` drawn with ``seed`` exactly as ``searchkit correlate --n N
    --seed S`` draws them (null: all 15,625); ``scored_only``: keep only those the score store
    already holds for every metric (a benchmark that computes no new scores)."""

    n: int | None = 1000
    seed: int = 0
    scored_only: bool = False


@dataclass
class BenchmarkConfig:
    """The ``benchmark:`` section of a benchmark file (see configs/bench-nb201.yaml): runs use seeds
    0 .. seeds-1; ``score_cache`` lists ``searchkit correlate`` output directories to seed the
    score store from; ``metric_options`` maps a metric name to its options."""

    seeds: int = 5
    pool: PoolConfig = field(default_factory=PoolConfig)
    score_cache: list = field(default_factory=list)
    metrics: list = field(default_factory=lambda: ["kcc"])
    metric_options: dict = field(default_factory=dict)
    strategies: list = field(default_factory=list)

    def entries(self) -> list[StrategyEntry]:
        return [build_section(StrategyEntry, entry, f"benchmark.strategies[{i}].")
                for i, entry in enumerate(self.strategies)]


def load_benchmark_config(path: str | Path) -> tuple[RunConfig, BenchmarkConfig]:
    """(the settings every run shares, the benchmark section) of the YAML at ``path``, every key checked.

    Scoring networks are initialised from the shared ``init_seed`` (0 when null) in every run."""
    base = load_config(path)
    if base.init_seed is None:
        base = dataclasses.replace(base, init_seed=0)
    bench = build_section(BenchmarkConfig, base.benchmark, "benchmark.")
    if base.space.name != "nb201":
        raise SearchkitError(f"the benchmark needs the nb201 space (its ground truth), not {base.space.name!r}")
    if bench.seeds < 1 or not bench.entries():
        raise SearchkitError("the benchmark needs benchmark.seeds >= 1 and at least one entry under benchmark.strategies")
    return base, bench


class PoolSpace:
    """NB201 restricted to ``members`` (e.g. architectures already scored): the benchmark's space.

    ``sample``: uniform over the members. ``mutate``: NB201's one-edge mutation of the parent,
    projected onto the pool: the child itself if it is a member, else a uniform choice among the
    members nearest to it in edge Hamming distance (the parent excluded). Codec and networks are
    NB201's.
    """

    def __init__(self, space: NB201Space, members: list[NB201Arch]) -> None:
        if len(members) < 2:
            raise SearchkitError(f"the benchmark pool needs at least 2 architectures, got {len(members)}")
        self.space, self.members, self.name = space, members, space.name
        self._codes = np.array([[OPS.index(op) for op in arch.ops] for arch in members])
        self._position = {arch: i for i, arch in enumerate(members)}

    def sample(self, rng: np.random.Generator) -> NB201Arch:
        return self.members[int(rng.integers(len(self.members)))]

    def mutate(self, arch: NB201Arch, rng: np.random.Generator) -> NB201Arch:
        child = self.space.mutate(arch, rng)
        if child in self._position:
            return child
        distance = (self._codes != np.array([OPS.index(op) for op in child.ops])).sum(1)
        if arch in self._position:
            distance[self._position[arch]] = len(arch.ops) + 1
        nearest = np.flatnonzero(distance == distance.min())
        return self.members[int(nearest[rng.integers(len(nearest))])]

    def encode(self, arch: NB201Arch) -> str:
        return self.space.encode(arch)

    def decode(self, text: str) -> NB201Arch:
        return self.space.decode(text)

    def build(self, arch: NB201Arch, num_classes: int, **kwargs):
        return self.space.build(arch, num_classes, **kwargs)


def seed_store(store: ScoreStore, setting: ScoreSetting, directory: str | Path) -> str:
    """Copy a ``searchkit correlate`` output directory's scores into ``store`` under ``setting`` if
    the directory's settings.yaml names that setting; returns a one-line note of what happened.

    The directory's ``scores.csv`` is read without modifying it (a correlate run may still be
    appending to it); incomplete rows are skipped. Rows the store holds already are kept.
    """
    directory = Path(directory)
    settings_path, scores_path = directory / "settings.yaml", directory / "scores.csv"
    if not settings_path.is_file() or not scores_path.is_file():
        return f"{directory}: no settings.yaml + scores.csv (yet); not used"
    settings = yaml.safe_load(settings_path.read_text()) or {}
    theirs = ScoreSetting("nb201", canonical_json(canonical_build("nb201", settings.get("build") or {})),
                          settings.get("dataset"), settings.get("batch_fingerprint"), settings.get("init_seed"),
                          resolve_kind(str(settings.get("device"))))
    mismatched = [f.name for f in dataclasses.fields(ScoreSetting) if getattr(theirs, f.name) != getattr(setting, f.name)]
    if mismatched:
        return f"{directory}: scored with other settings ({', '.join(mismatched)} differ); not used"
    labels = list(settings["metrics"])
    header = ScoreFile(scores_path, labels).header
    keys = [metric_key(parse_metric_spec(label)[1]) for label in labels]
    reader = csv.reader(complete_lines(scores_path))
    if next(reader, None) != header:
        return f"{directory}: scores.csv does not have the columns its settings.yaml names; not used"
    count = 0
    entries = []
    for raw in reader:
        if len(raw) != len(header):
            continue
        try:
            values = [float(v) for v in raw[2:]]
        except ValueError:
            continue
        entries += [(key, raw[1], values[k], values[len(labels) + k]) for k, key in enumerate(keys)]
        count += 1
    store.put_many(setting, entries)
    return f"{directory}: {count} architectures x {len(labels)} metrics"


def _run_config(base: RunConfig, bench: BenchmarkConfig, entry: StrategyEntry, metric: str, seed: int) -> RunConfig:
    label = entry.label or entry.name
    config = base.to_dict()
    config.update(
        name=f"{label}-{metric}-s{seed}", seed=seed, benchmark={},
        metric={"name": metric, "options": dict(bench.metric_options.get(metric, {}))},
        strategy={"name": entry.name, "options": dict(entry.options)},
        budget={**config["budget"], **entry.budget},
    )
    return config_from_dict(config)


def _run_dirname(label: str, metric: str, seed: int) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{label}__{metric}__s{seed}")


def incumbent_curve(rows: list[HistoryRow]) -> list[tuple[float, str]]:
    """(cumulative search cost, incumbent arch) after every query: the incumbent is the best
    validated architecture once any was validated, else the best scored (the strategies' own
    rules; ties keep the earlier). Cost = training-free wall seconds + simulated seconds."""
    curve, cost = [], 0.0
    best: dict[str, tuple[float, str]] = {}
    for row in rows:
        cost += row.seconds + row.simulated_seconds
        kind = "validate" if row.kind == "validate" else "score"
        if kind not in best or row.score > best[kind][0]:
            best[kind] = (row.score, row.arch)
        curve.append((cost, (best.get("validate") or best["score"])[1]))
    return curve


def _read_runs(path: Path) -> list[dict]:
    """The complete rows of ``runs.csv``; a last line torn by a kill is dropped from the file."""
    if not path.exists():
        return []
    lines = complete_lines(path)
    reader = csv.DictReader(lines)
    if tuple(reader.fieldnames or ()) != RUN_FIELDS:
        raise SearchkitError(f"{path} has other columns than this version writes ({', '.join(RUN_FIELDS)}); "
                             "use another --out")
    rows = [row for row in reader if row.get("run") and None not in row]
    if path.read_text() != "".join(lines):
        write_atomic(path, "".join(lines))
    return rows


def _append_run(path: Path, row: dict) -> None:
    new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, RUN_FIELDS)
        if new:
            writer.writeheader()
        writer.writerow(row)


def run_benchmark(config: str | Path, out: str | Path, seeds: int | None = None, progress: bool = True,
                  store: str | Path | None = None, parallel: Parallel = Parallel()) -> Path:
    """Run every (strategy, metric, seed) not yet in ``out/runs.csv``; write the reports. Returns ``out``.

    ``store``: the score store (None: the config's ``store``, else ``out/scores.db``); it is
    recorded in ``out/config.yaml``, which :func:`resume_benchmark` reads. ``parallel``: how the
    pool's missing scores are computed.
    """
    base, bench = load_benchmark_config(config)
    if seeds is not None:
        bench = dataclasses.replace(bench, seeds=seeds)
    if store is not None:
        base = dataclasses.replace(base, store=str(store))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "config.yaml", yaml.safe_dump({**base.to_dict(), "benchmark": asdict(bench)}, sort_keys=False))
    table = NB201Table.load(base.table)
    space = NB201Space()
    runs = [(entry, metric, seed) for entry in bench.entries() for metric in (entry.metrics or bench.metrics)
            for seed in range(bench.seeds)]
    needed = {m for entry, m, _ in runs if m != VALIDATION and entry.name != "nasi"}
    if any(entry.name == "hnas" for entry, _, _ in runs):
        needed.add(KAPPA_METRIC)
    metrics = {m: get_metric(m, **bench.metric_options.get(m, {})) for m in sorted(needed)}
    scoring = ScoringRecipe.from_config(base, metrics, resolve_device(base.device)).open(space)
    with ScoreStore(base.store or out / "scores.db") as db:
        notes = [seed_store(db, scoring.setting, directory) for directory in bench.score_cache]
        indices = range(NUM_ARCHS) if bench.pool.n is None else sample_indices(bench.pool.n, bench.pool.seed, NUM_ARCHS)
        texts = [table.arch_str(i) for i in indices]
        with ScoreRunner(scoring, db, parallel) as runner:
            if bench.pool.scored_only:
                texts = [t for t in texts if runner.stored(t) is not None]
            elif metrics:
                for _ in tqdm(runner.scores(texts), desc="pool scores", unit="arch", total=len(texts),
                              disable=not progress):
                    pass
        pool = PoolSpace(space, [space.decode(t) for t in texts])
        notes.append(f"pool: {len(pool.members)} architectures" + (
            f" (of {len(indices)}: those scored with {', '.join(sorted(needed))})" if bench.pool.scored_only else ""))

        runs_csv = out / "runs.csv"
        done = {(r["strategy"], r["metric"], r["seed"]) for r in _read_runs(runs_csv)}
        todo = [(e, m, s) for e, m, s in runs if (e.label or e.name, m, str(s)) not in done]
        for entry, metric, seed in tqdm(todo, desc="benchmark", unit="run", disable=not progress):
            _run_one(out, base, bench, entry, metric, seed, pool, db, table)
            _report(out, base.name, notes, table, len(runs))  # the reports always show the runs finished so far
    _report(out, base.name, notes, table, len(runs))
    return out


def _report(out: Path, name: str, notes: list[str], table: NB201Table, total: int) -> None:
    """``summary.md`` and ``anytime.png`` of the runs in ``out/runs.csv`` (``total`` planned)."""
    rows = _read_runs(out / "runs.csv")
    write_summary(out, name, rows, [*notes, f"runs finished: {len(rows)} of {total}"])
    plot_anytime(out, rows, table)


def resume_benchmark(out: str | Path, progress: bool = True, parallel: Parallel = Parallel()) -> Path:
    """Continue the benchmark in ``out`` with the config (and store) it recorded."""
    config = Path(out) / "config.yaml"
    if not config.is_file():
        raise SearchkitError(f"cannot resume {out}: no config.yaml there; pass the --out directory of an earlier "
                             "searchkit benchmark")
    return run_benchmark(config, out, progress=progress, parallel=parallel)


def _run_one(out: Path, base: RunConfig, bench: BenchmarkConfig, entry: StrategyEntry, metric: str, seed: int,
             pool: PoolSpace, store: ScoreStore, table: NB201Table) -> None:
    """One (strategy, metric, seed) run (resumed from its history if an earlier one was cut
    short), appended to ``out/runs.csv``."""
    label = entry.label or entry.name
    run_dir = out / "runs" / _run_dirname(label, metric, seed)
    partial = (run_dir / "config.yaml").is_file() and not (run_dir / "best.json").is_file()
    result = run_search(None if partial else _run_config(base, bench, entry, metric, seed), out=run_dir,
                        resume=run_dir if partial else None, progress=False,
                        space=None if entry.name == "nasi" or metric == VALIDATION else pool, store=store)
    _append_run(out / "runs.csv", {
        "strategy": label, "metric": metric, "seed": seed, "arch": result.arch, "index": result.index,
        "selected_by": result.selected_by, "score": repr(result.score),
        **{f"{title}_test": table.accuracy(result.index, dataset, "test", 200) for dataset, title in REPORTED},
        "wall_seconds": f"{result.search_seconds:.3f}", "simulated_seconds": f"{result.simulated_seconds:.3f}",
        "strategy_seconds": f"{result.strategy_seconds:.3f}", "archs_scored": result.archs_scored,
        "validations": result.validations, "unique_archs": result.unique_archs,
        "run": str(run_dir.relative_to(out)),
    })


def _mean_std(values: list[float]) -> str:
    return f"{np.mean(values):.2f} ± {np.std(values):.2f}" if len(values) > 1 else f"{values[0]:.2f}"


def write_summary(out: Path, name: str, rows: list[dict], notes: list[str]) -> Path:
    """``out/summary.md``: one line per (strategy, metric) with mean +- std over seeds, then the
    published rows of seed 003's table 3."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["strategy"], row["metric"]), []).append(row)
    lines = [
        f"# NAS-Bench-201 benchmark: {name}", "",
        "Test accuracy (%) after 200 epochs of the selected architecture (NAS-Bench-201 table), mean ± std "
        "over seeds (population std). Search cost: **wall** = measured seconds of training-free work on "
        "this machine (cached scores are charged the seconds they took to compute); **simulated** = "
        "training time charged for validations (12-epoch queries: 12/200 of the table's 200-epoch time). "
        "Scores / validations: queries answered per run, repeats included (a repeat is free); unique archs: "
        "distinct architectures queried.", "",
        "| strategy | metric | seeds | C10 | C100 | IN16 | wall s | simulated s | scores | validations | unique archs |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (strategy, metric), group in groups.items():
        accuracy = " | ".join(_mean_std([float(r[f"{title}_test"]) for r in group]) for _, title in REPORTED)
        mean = {key: np.mean([float(r[key]) for r in group])
                for key in ("wall_seconds", "simulated_seconds", "archs_scored", "validations", "unique_archs")}
        lines.append(f"| {strategy} | {metric} | {len(group)} | {accuracy} | {mean['wall_seconds']:.1f} | "
                     f"{mean['simulated_seconds']:.0f} | {mean['archs_scored']:.0f} | {mean['validations']:.1f} | "
                     f"{mean['unique_archs']:.0f} |")
    lines += ["", "Published (seed 003, table 3; cost in GPU seconds on a 1080Ti):", "",
              "| algorithm | C10 | C100 | IN16 | cost s |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {c10} | {c100} | {in16} | {cost} |" for name, c10, c100, in16, cost in PUBLISHED]
    lines += ["", "Score caches and pool:", ""] + [f"- {note}" for note in notes]
    path = out / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def plot_anytime(out: Path, rows: list[dict], table: NB201Table) -> Path:
    """``out/anytime.png``: best-so-far CIFAR-10 test accuracy against search cost (wall +
    simulated seconds, log scale), the mean over seeds with a band from the lowest to the highest
    seed (a one-shot search: a point with its std). One panel per training-free metric, one line
    per strategy; training-based searches (metric ``validation``) are drawn dotted in every panel
    (like seed 003, figure 2)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    accuracy = table.column("cifar10", "test", 200)
    curves: dict[str, dict[str, list[list[tuple[float, float]]]]] = {}
    for row in rows:
        history = RunDir(out / row["run"]).read_history()
        curve = [(cost, float(accuracy[table.index_of(arch)])) for cost, arch in incumbent_curve(history)]
        curves.setdefault(row["metric"], {}).setdefault(row["strategy"], []).append(curve)
    shared = curves.pop(VALIDATION, {}) if len(curves) > 1 else {}
    labels = list(dict.fromkeys(row["strategy"] for row in rows))
    colours = {label: plt.get_cmap("tab10")(i % 10) for i, label in enumerate(labels)}
    optimum = float(np.nanmax(accuracy))
    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.6), dpi=110, squeeze=False)
    for ax, (metric, strategies) in zip(axes[0], curves.items()):
        for strategy, runs in strategies.items():
            _draw(ax, runs, strategy, "-", colours[strategy])
        for strategy, runs in shared.items():
            _draw(ax, runs, strategy, ":", colours[strategy])
        ax.axhline(optimum, color="k", linestyle="--", linewidth=0.8)
        ax.set(xscale="log", title=metric, xlabel="search cost (s): wall + simulated",
               ylabel="best-so-far CIFAR-10 test acc. (%)", ylim=(max(ax.get_ylim()[0], optimum - 6), optimum + 0.4))
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = out / "anytime.png"
    fig.savefig(path)
    plt.close(fig)
    return path


def _draw(ax: Any, runs: list[list[tuple[float, float]]], label: str, style: str, colour: Any) -> None:
    """Mean incumbent accuracy over seeds (a step line) and its min-max band, where every seed has one."""
    costs = np.array(sorted({max(c, 1e-2) for curve in runs for c, _ in curve}))
    values = np.array([[_value_at(curve, c) for c in costs] for curve in runs])
    defined = ~np.isnan(values).any(0)
    costs, values = costs[defined], values[:, defined]
    if len(costs) == 1:
        ax.errorbar(costs, values.mean(0), yerr=values.std(0), fmt="o", capsize=3, label=label, color=colour)
        return
    ax.step(costs, values.mean(0), where="post", linestyle=style, label=label, color=colour)
    ax.fill_between(costs, values.min(0), values.max(0), step="post", alpha=0.08, color=colour)


def _value_at(curve: list[tuple[float, float]], cost: float) -> float:
    """The incumbent's accuracy once ``cost`` has been spent (NaN before the first answer)."""
    value = math.nan
    for spent, accuracy in curve:
        if max(spent, 1e-2) > cost:
            break
        value = accuracy
    return value


__all__ = ["BenchmarkConfig", "PoolSpace", "StrategyEntry", "incumbent_curve", "load_benchmark_config",
           "resume_benchmark", "run_benchmark", "seed_store"]
