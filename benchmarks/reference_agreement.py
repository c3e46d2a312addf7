"""Rank agreement of our zero-cost metrics with two peers' values on NAS-Bench-201 / CIFAR-10.

References (``../shared/data/reference/``, see its README): NAS-Bench-Suite-Zero (NASLib's port
of the zero-cost code; 9,445 architectures, failed runs stored as -1e8) and the original
zero-cost-proxies code (indices 0..199). Both scored networks at initialisation on one CIFAR-10
training batch of 64 with BN in train mode; we do the same with our own batch
(``scoring_batch(cifar10, batch_size, seed)``) and initialisation (``build_network(seed=0)``,
C=16, N=5), so values differ and agreement is a Spearman correlation across architectures.

The sample: every architecture of the first-200 file that Suite-Zero also has (132), plus
architectures drawn from the rest of Suite-Zero with ``np.random.default_rng(seed)`` up to --n.

    python benchmarks/reference_agreement.py --n 300 --seed 0 --out results/reference-agreement/

Writes ``values.csv`` (one row per architecture, streamed: our value and seconds per metric) and
``agreement.md`` (the table) into --out. --workers N scores in N processes of one thread each.
--against OTHER/values.csv adds the Spearman of our values with another run of ours (another
--seed / --init-seed): the noise ceiling of a metric under a change of batch and initialisation.
"""
from __future__ import annotations

import argparse
import csv
import math
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from tqdm import tqdm

from searchkit.data import Batch, DatasetSplits, get_dataset, scoring_batch
from searchkit.errors import SearchkitError
from searchkit.metrics import Metric, get_metric
from searchkit.paths import find_data
from searchkit.runtime import build_network
from searchkit.spaces import SearchSpace, get_space

SUITE_ZERO = "reference/nasbench-suite-zero_nb201_cifar10.csv"
FIRST_200 = "reference/zero-cost-nas_nb201_cifar10_first200.csv"
#: our metric -> (Suite-Zero column, first-200 column or None)
COLUMNS: dict[str, tuple[str, str | None]] = {
    "grad_norm": ("grad_norm", "grad_norm"),
    "snip": ("snip", "snip"),
    "grasp": ("grasp", "grasp"),
    "fisher": ("fisher", "fisher"),
    "synflow": ("synflow", "synflow"),
    "jacob_cov": ("jacov", "jacob_cov"),
    "naswot": ("nwot", None),
    "params": ("params", None),
    "flops": ("flops", None),
}
#: Suite-Zero's value for a failed run
FAILED = -1e8


def read_reference(relative: str, key: str) -> dict[str, dict[str, float]]:
    """arch string -> {column: value}; missing, NaN and failed (-1e8) values are left out."""
    path = find_data(relative)
    if path is None:
        raise SearchkitError(f"reference file {relative} not found under the shared data folder")
    table: dict[str, dict[str, float]] = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            values = {}
            for column, text in row.items():
                try:
                    value = float(text)
                except (TypeError, ValueError):
                    continue
                if math.isfinite(value) and value != FAILED:
                    values[column] = value
            table[row[key]] = values
    return table


def sample_archs(suite: dict, first200: dict, n: int, seed: int) -> list[str]:
    """The first-200 architectures Suite-Zero has, then random other Suite-Zero ones, n in all."""
    both = [arch for arch in first200 if arch in suite]
    others = sorted(set(suite) - set(both))
    extra = np.random.default_rng(seed).choice(len(others), size=max(0, n - len(both)), replace=False)
    return (both + [others[i] for i in sorted(extra)])[:n]


def score_arch(arch: str, metrics: dict[str, Metric], splits: DatasetSplits, batch: Batch,
               space: SearchSpace, init_seed: int = 0) -> dict[str, float | str]:
    """Our value and seconds of every metric for one architecture (C=16, N=5)."""
    net = build_network(space, space.decode(arch), splits, seed=init_seed, build={"C": 16, "N": 5})
    row: dict[str, float | str] = {"arch": arch}
    for name, metric in metrics.items():
        start = time.perf_counter()
        row[name] = metric(net, batch)
        row[f"{name}_seconds"] = time.perf_counter() - start
    return row


_WORKER: dict = {}


def _init_worker(batch_size: int, seed: int, init_seed: int, metrics: list[str]) -> None:
    torch.set_num_threads(1)
    splits = get_dataset("cifar10")
    _WORKER.update(splits=splits, batch=scoring_batch(splits, batch_size, seed), space=get_space("nb201"),
                   metrics={name: get_metric(name) for name in metrics}, init_seed=init_seed)


def _score_in_worker(arch: str) -> dict[str, float | str]:
    return score_arch(arch, **_WORKER)


def score_all(archs: list[str], metrics: list[str], batch_size: int, seed: int, init_seed: int,
              workers: int, out: Path) -> list[dict]:
    """Score ``archs`` in ``workers`` processes, streaming rows into ``out/values.csv``."""
    fields = ["arch"] + metrics + [f"{name}_seconds" for name in metrics]
    rows = []
    ctx = mp.get_context("spawn")
    with open(out / "values.csv", "w", newline="") as handle, \
            ctx.Pool(workers, _init_worker, (batch_size, seed, init_seed, metrics)) as pool:
        writer = csv.DictWriter(handle, fields)
        writer.writeheader()
        for row in tqdm(pool.imap(_score_in_worker, archs), total=len(archs), desc="scoring", unit="arch"):
            writer.writerow(row)
            handle.flush()
            rows.append(row)
    return rows


def spearman(ours: list[float], theirs: list[float]) -> float:
    return float(spearmanr(ours, theirs)[0]) if len(ours) > 2 else math.nan


def read_values(path: Path) -> dict[str, dict[str, float]]:
    """arch -> {metric: value} from another run's ``values.csv``."""
    with open(path, newline="") as handle:
        return {row.pop("arch"): {k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)}


def agreement(rows: list[dict], suite: dict, first200: dict, metrics: list[str],
              other: dict[str, dict[str, float]] | None = None) -> list[dict]:
    """Per metric: n and Spearman vs each reference, peer-vs-peer Spearman, mean seconds, and
    (with ``other``, a run on another batch/initialisation) Spearman of ours vs ours."""
    table = []
    for name in metrics:
        suite_col, first_col = COLUMNS[name]
        entry: dict = {"metric": name, "suite_col": suite_col, "first_col": first_col or "-",
                       "seconds": float(np.mean([r[f"{name}_seconds"] for r in rows]))}
        pairs = [(r[name], suite[r["arch"]][suite_col]) for r in rows if suite_col in suite.get(r["arch"], {})]
        entry["n_suite"], entry["rho_suite"] = len(pairs), spearman(*zip(*pairs)) if pairs else math.nan
        if first_col is not None:
            pairs = [(r[name], first200[r["arch"]][first_col])
                     for r in rows if first_col in first200.get(r["arch"], {})]
            entry["n_first"], entry["rho_first"] = len(pairs), spearman(*zip(*pairs)) if pairs else math.nan
            peers = [(suite[a][suite_col], first200[a][first_col]) for a in (r["arch"] for r in rows)
                     if suite_col in suite.get(a, {}) and first_col in first200.get(a, {})]
            entry["rho_peers"] = spearman(*zip(*peers)) if peers else math.nan
        if other is not None:
            pairs = [(r[name], other[r["arch"]][name]) for r in rows if name in other.get(r["arch"], {})]
            entry["n_self"], entry["rho_self"] = len(pairs), spearman(*zip(*pairs)) if pairs else math.nan
        table.append(entry)
    return table


def markdown(table: list[dict]) -> str:
    def fmt(value: float | None) -> str:
        return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"

    against = any("rho_self" in e for e in table)
    lines = ["| metric | Suite-Zero column | n | Spearman vs Suite-Zero | first-200 column | n | "
             "Spearman vs first-200 | peers (Suite-Zero vs first-200) | "
             + ("n | ours vs --against run | " if against else "") + "mean s / arch |",
             "|---|---|---|---|---|---|---|---|" + ("---|---|" if against else "") + "---|"]
    for e in table:
        lines.append(f"| {e['metric']} | {e['suite_col']} | {e['n_suite']} | {fmt(e['rho_suite'])} | "
                     f"{e['first_col']} | {e.get('n_first', '-')} | {fmt(e.get('rho_first'))} | "
                     f"{fmt(e.get('rho_peers'))} | "
                     + (f"{e.get('n_self', '-')} | {fmt(e.get('rho_self'))} | " if against else "")
                     + f"{e['seconds']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300, help="architectures to score")
    parser.add_argument("--seed", type=int, default=0, help="sampling and scoring-batch seed")
    parser.add_argument("--init-seed", type=int, default=0, help="network initialisation seed")
    parser.add_argument("--batch-size", type=int, default=64, help="scoring batch (the references': 64)")
    parser.add_argument("--metrics", nargs="+", default=list(COLUMNS), choices=list(COLUMNS))
    parser.add_argument("--workers", type=int, default=1, help="processes, one thread each")
    parser.add_argument("--out", type=Path, default=Path("results/reference-agreement"))
    parser.add_argument("--against", type=Path, help="another run's values.csv: add ours-vs-ours Spearman")
    args = parser.parse_args(argv)
    suite = read_reference(SUITE_ZERO, "net_str")
    first200 = read_reference(FIRST_200, "arch_str")
    archs = sample_archs(suite, first200, args.n, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows = score_all(archs, args.metrics, args.batch_size, args.seed, args.init_seed, args.workers, args.out)
    other = read_values(args.against) if args.against else None
    table = markdown(agreement(rows, suite, first200, args.metrics, other))
    (args.out / "agreement.md").write_text(table)
    print(table + f"\n{len(rows)} architectures in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
