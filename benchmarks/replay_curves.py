"""Rebuild the incumbent curves (``curves.csv``) and, for a hardware-aware benchmark's multi-objective
runs, the found fronts (``fronts.csv``) of a benchmark's recorded runs that lack them (on a fresh clone
their run directories are gone: ``runs/`` is not committed, and these files came later than those
runs), by running each such run again from the benchmark's recorded ``config.yaml`` (or replaying its
history where its directory is here), and check that the run reproduces its recorded row (every
field but the measured seconds and the score). Then the benchmark's reports are rewritten.

    OMP_NUM_THREADS=1 python benchmarks/replay_curves.py results/benchmark-nb201 [--accept]
    OMP_NUM_THREADS=1 python benchmarks/replay_curves.py results/hardware-aware/bench-all

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

#: The fields of a row a rerun need not reproduce: measured seconds, and a score that only its last digits may change.
MEASURED = ("wall_seconds", "strategy_seconds", "score")


def main(argv: list[str] | None = None) -> int:
    import torch

    from searchkit.runtime import resolve_device
    from searchkit.scoring import ScoringRecipe
    from searchkit.spaces import get_space
    from searchkit.store import ScoreStore
    from searchkit.study import benchmark as bench
    from searchkit.study import hardware
    from searchkit.study.benchmark_config import load_benchmark_config
    from searchkit.study.curves import Curves, Fronts
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
    if matrix.hardware:
        plan = hardware.parse_hardware(matrix, space, base)
        study = bench.Study(args.out, hardware.FIELDS)
        planned = {run.name: run for run in hardware.planned_runs(plan, base, matrix, space)}
    else:
        study = bench.Study(args.out, bench.RUN_FIELDS)
        planned = {run.name: run for run in bench.planned_runs(base, matrix, table)}
    curves, fronts = Curves(args.out), Fronts(args.out)
    rows = study.rows()

    def multi_objective(row: dict) -> bool:  # a hardware row with a hypervolume: its report draws its front
        return bool(row.get("hv"))

    todo = [k for k, row in enumerate(rows)
            if not curves.stored(row["run"]) or (multi_objective(row) and not fronts.stored(row["run"]))]
    context = ScoringRecipe.from_config(base, bench.pool_metrics(matrix, space), resolve_device(base.device)).open(space)
    differ = []
    with ScoreStore(base.store or args.out / "scores.db") as db:
        pool, _ = bench.score_pool(base, matrix, space, table, context, db, Parallel(), True)
        for k in tqdm(todo, desc="replay", unit="run"):
            run = planned[Path(rows[k]["run"]).name]
            again = {key: str(value) for key, value in study.run(run, pool, db).items()}
            changed = [key for key in study.fields if key not in MEASURED and again[key] != rows[k][key]]
            if changed:
                differ.append(run.name)
                tqdm.write(f"{rows[k]['run']}: the rerun differs in " + ", ".join(
                    f"{key} ({rows[k][key]} -> {again[key]})" for key in changed))
                if not args.accept:  # the rerun is discarded, so no report takes its curve for the row's
                    shutil.rmtree(study.path(run.name))
                    continue
                rows[k] = again
                study.rewrite(rows)
            curves.keep(rows[k]["run"])
            if multi_objective(rows[k]):
                fronts.keep(rows[k]["run"])
    print(f"replayed {len(todo)} runs; {len(differ)} differ from their recorded rows"
          + (" (accepted: their rows are the reruns')" if differ and args.accept else ""))
    bench.run_benchmark(config, args.out, progress=False)  # every run has a row: only the reports are written
    return 1 if differ and not args.accept else 0


if __name__ == "__main__":
    sys.exit(main())
