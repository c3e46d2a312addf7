"""Run some of a benchmark's runs ahead of it, several at once, into the run directories the
benchmark uses: for expensive rows that do not search the scored pool (a one-shot search such as
NASI, ~13 CPU-minutes a run). ``searchkit benchmark`` later finds them finished, replays their
history without any oracle and records their rows.

    OMP_NUM_THREADS=1 python benchmarks/prerun.py --config configs/bench-nb201.yaml \\
        --out results/benchmark-nb201 --label NASI --jobs 2
"""
from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor


def run_one(config: str, out: str, label: str, metric: str, seed: int, dataset: str) -> str:
    """One run of the benchmark (or its resumption) in its directory; returns the directory."""
    import torch

    from searchkit.config import VALIDATION
    from searchkit.study.benchmark import needs, run_config, run_name
    from searchkit.study.benchmark_config import load_benchmark_config
    from searchkit.study.runs import Study

    torch.set_num_threads(1)
    base, bench = load_benchmark_config(config)
    entry = next(e for e in bench.entries() if e.title == label)
    if metric != VALIDATION and not needs(entry).gradient:
        raise SystemExit(f"{label} searches the benchmark's scored pool; let searchkit benchmark run it")
    name = run_name(base, entry, metric, seed, dataset)
    study = Study(out, ("run",))
    if not (study.path(name) / "best.json").is_file():
        study.search(name, run_config(base, entry, metric, seed, dataset))
    return str(study.path(name))


def main(argv: list[str] | None = None) -> int:
    from searchkit.study.benchmark import run_matrix
    from searchkit.study.benchmark_config import load_benchmark_config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--label", required=True, help="the strategy entry's label")
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args(argv)
    base, bench = load_benchmark_config(args.config)
    work = [(entry.title, metric, seed, dataset) for entry, metric, seed, dataset in run_matrix(bench, base)
            if entry.title == args.label]
    if not work:
        raise SystemExit(f"no runs labelled {args.label!r} in {args.config}")
    with ProcessPoolExecutor(args.jobs) as pool:
        for path in pool.map(run_one, *zip(*[(args.config, args.out, *w) for w in work])):
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
