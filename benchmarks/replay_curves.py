"""Rebuild the incumbent curves of a benchmark's recorded runs that ``curves.csv`` lacks (on a fresh
clone their run directories are gone: ``runs/`` is not committed, and ``curves.csv`` came later than
these runs), by running each such run again from the benchmark's recorded ``config.yaml`` (or replaying
its history where its directory is here), and check that the run reproduces its recorded row (the
selected cell, its accuracies, the queries and the simulated seconds). Then the
benchmark's reports are rewritten with every run's curve.

    OMP_NUM_THREADS=1 python benchmarks/replay_curves.py results/benchmark-nb201 [--accept]

A rerun that differs is listed and discarded (its directory removed, no curve kept), unless ``--accept``,
which replaces the recorded row by the rerun's, so that the row and its curve agree. Resumable: a run whose curve is
kept is not run again. Exit 1 when a rerun differs and was not accepted.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from tqdm import tqdm

#: The fields a rerun must reproduce (wall and strategy seconds are measured, so they differ).
COMPARED = ("arch", "selected_by", "C10_test", "C100_test", "IN16_test", "archs_scored", "validations",
            "unique_archs", "simulated_seconds")


def main(argv: list[str] | None = None) -> int:
    import torch

    from searchkit.config import VALIDATION
    from searchkit.runtime import resolve_device
    from searchkit.scoring import ScoringRecipe
    from searchkit.spaces import get_space
    from searchkit.store import ScoreStore
    from searchkit.study import benchmark as bench
    from searchkit.study.benchmark_config import load_benchmark_config, needs
    from searchkit.study.curves import Curves
    from searchkit.workers import Parallel

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--accept", action="store_true", help="replace a differing row by its rerun's")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    config = args.out / "config.yaml"
    base, matrix = load_benchmark_config(config)
    space = get_space(base.space.name)
    table = space.benchmark(base.table)
    study = bench.Study(args.out, bench.RUN_FIELDS)
    curves = Curves(args.out)
    rows = study.rows()
    todo = [k for k, row in enumerate(rows) if not curves.stored(row["run"])]
    runs = {bench.run_name(base, *run): run for run in bench.run_matrix(matrix, base)}
    datasets = bench.benchmark_datasets(matrix, base, table)
    context = ScoringRecipe.from_config(base, bench.pool_metrics(matrix, space), resolve_device(base.device)).open(space)
    differ = []
    with ScoreStore(base.store or args.out / "scores.db") as db:
        pool, _ = bench.score_pool(base, matrix, space, table, context, db, Parallel(), True)
        for k in tqdm(todo, desc="replay", unit="run"):
            name = Path(rows[k]["run"]).name
            entry, metric, seed, dataset = runs[name]
            searches_pool = metric != VALIDATION and not needs(entry).gradient
            result = study.search(name, bench.run_config(base, entry, metric, seed, dataset),
                                  space=pool if searches_pool else None, store=db)
            again = {key: str(value) for key, value in
                     bench.run_row(entry, metric, seed, datasets[dataset], name, result, table).items()}
            changed = [key for key in COMPARED if again[key] != rows[k][key]]
            if changed:
                differ.append(name)
                tqdm.write(f"{rows[k]['run']}: the rerun differs in " + ", ".join(
                    f"{key} ({rows[k][key]} -> {again[key]})" for key in changed))
                if not args.accept:  # the rerun is discarded, so no report takes its curve for the row's
                    shutil.rmtree(study.path(name))
                    continue
                rows[k] = again
                study.rewrite(rows)
            curves.keep(rows[k]["run"])
    print(f"replayed {len(todo)} runs; {len(differ)} differ from their recorded rows"
          + (" (accepted: their rows are the reruns')" if differ and args.accept else ""))
    bench.run_benchmark(config, args.out, progress=False)  # every run has a row: only the reports are written
    return 1 if differ and not args.accept else 0


if __name__ == "__main__":
    sys.exit(main())
