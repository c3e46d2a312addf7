"""Several processes scoring overlapping architectures into one score store, then an integrity check.

    PYTHONPATH=. python benchmarks/store_stress.py --processes 4 --seconds 600 --out results/store-stress

Issue 25's stress test of a shared ``--store`` (not a timed test). ``--processes`` processes
(default 4) run for ``--seconds`` (default 600) against one SQLite store, each through the same
:class:`~searchkit.scoring.ScoreRunner` a search or a correlate uses: every architecture is looked
up first and scored and written only when the store lacks it. Work comes in rounds: round ``r``
scores a pool of ``--pool`` NB201 cells drawn with seed ``r`` under network seed ``r`` (a new
store setting per round, so the store keeps growing), each process in its own order, so the
processes read and write the same rows at the same time. Metrics are the cheap ``params`` and
``synflow`` on 2-channel, 1-cell networks and 8x8 synthetic images, so the processes stress the
store, not the CPU. Every process logs each answer it got (value, and whether it computed it).

Then the check, reported in ``OUT/README.md`` and on stdout (exit 1 unless all are zero):
SQLite's ``integrity_check``; *lost* rows (answers a process logged that the store lacks);
*duplicates* (keys held twice); *mismatches* (a logged value unlike the stored one); *unlogged*
rows (stored, logged by nobody); *tracebacks* (processes that failed); *unlike alone* (a seeded
sample of logged answers scored again by this process alone, in a fresh store, that differ).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("params", "synflow")
DATA = {"shape": [3, 8, 8], "n_train": 64, "n_valid": 0, "n_test": 8}


def recipe(round_: int):
    """Round ``round_``'s scoring recipe: network seed ``round_``, so each round is a new setting."""
    from searchkit.metrics import parse_metric
    from searchkit.scoring import ScoringRecipe

    return ScoringRecipe("nb201", "synthetic", None, dict(DATA), 8, 0, "train",
                         {m: parse_metric(m) for m in METRICS}, round_, {"C": 2, "N": 1}, "cpu")


def pool(round_: int, size: int) -> list[str]:
    """Round ``round_``'s distinct NB201 cells (the same in every process)."""
    from searchkit.spaces import get_space

    space, rng = get_space("nb201"), np.random.default_rng(round_)
    return list(dict.fromkeys(space.encode(space.sample(rng)) for _ in range(size)))


def worker(store: Path, rank: int, seconds: float, size: int, log: Path) -> None:
    """Score rounds of overlapping cells into ``store`` until ``seconds`` pass; one JSON line per
    answer in ``log``: round, arch, values, whether this process computed it."""
    import torch

    from searchkit.metrics.base import DegenerateNetworkWarning
    from searchkit.scoring import ScoreRunner
    from searchkit.store import ScoreStore

    torch.set_num_threads(1)
    warnings.simplefilter("ignore", DegenerateNetworkWarning)  # synflow on cells without a path: expected
    end = time.monotonic() + seconds
    with ScoreStore(store) as db, log.open("w") as out:
        round_ = 0
        while time.monotonic() < end:
            archs = pool(round_, size)
            order = np.random.default_rng([round_, rank]).permutation(len(archs))
            with ScoreRunner(recipe(round_).open(), db) as runner:
                for k in order:
                    if time.monotonic() >= end:
                        break
                    ((text, result, computed),) = runner.scores([archs[k]])
                    out.write(json.dumps({"round": round_, "arch": text, "computed": computed is not None,
                                          "values": {m: result[m][0] for m in METRICS}}) + "\n")
                    out.flush()
            round_ += 1


def same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def check(store: Path, logs: list[Path], sample: int) -> dict:
    """The integrity figures of ``store`` against the processes' ``logs``."""
    import torch

    from searchkit.metrics.base import DegenerateNetworkWarning
    from searchkit.scoring import ScoreRunner
    from searchkit.store import ScoreStore

    with sqlite3.connect(store) as db:
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        duplicates = db.execute("SELECT COUNT(*) FROM (SELECT 1 FROM scores GROUP BY space, build, dataset, batch, "
                                "seed, device, metric, options, arch HAVING COUNT(*) > 1)").fetchone()[0]
    with ScoreStore(store) as db:
        stored = {(row["seed"], row["metric"], row["arch"]): row["value"] for row in db.rows()}
    logged, answers, computed = {}, 0, 0
    for path in logs:
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            answers += 1
            computed += entry["computed"]
            for metric, value in entry["values"].items():
                logged.setdefault((entry["round"], metric, entry["arch"]), []).append(value)
    lost = sum(key not in stored for key in logged)
    mismatches = sum(any(not same(v, stored[key]) for v in values) for key, values in logged.items() if key in stored)
    unlogged = sum(key not in logged for key in stored)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", DegenerateNetworkWarning)
    rng = np.random.default_rng(0)
    keys = sorted({(r, a) for r, _, a in logged})
    picked = [keys[i] for i in rng.choice(len(keys), size=min(sample, len(keys)), replace=False)]
    unlike = 0
    with tempfile.TemporaryDirectory() as tmp, ScoreStore(Path(tmp) / "alone.db") as alone:
        for round_, arch in picked:
            with ScoreRunner(recipe(round_).open(), alone) as runner:
                ((_, result, _),) = runner.scores([arch])
            unlike += any(not same(result[m][0], stored[(round_, m, arch)]) for m in METRICS)
    return {"integrity_check": integrity, "rows": len(stored), "answers": answers, "computed": computed,
            "lost": lost, "duplicates": duplicates, "mismatches": mismatches, "unlogged": unlogged,
            "rescored_alone": len(picked), "unlike_alone": unlike}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--pool", type=int, default=300, help="cells per round (default: 300)")
    parser.add_argument("--sample", type=int, default=200, help="answers scored again alone (default: 200)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "store-stress")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.store, args.worker, args.seconds, args.pool, args.out)
        return 0

    args.out.mkdir(parents=True, exist_ok=True)
    store = args.out / "stress.db"
    for stale in args.out.glob("stress.db*"):
        stale.unlink()
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    logs = [args.out / f"worker-{k}.jsonl" for k in range(args.processes)]
    load = os.getloadavg()[0]
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", str(k), "--store", str(store), "--seconds",
                               str(args.seconds), "--pool", str(args.pool), "--out", str(log)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for k, log in enumerate(logs)]
    errors = [proc.communicate()[1] for proc in procs]
    wall = time.perf_counter() - start
    tracebacks = sum(proc.returncode != 0 or "Traceback" in err for proc, err in zip(procs, errors))
    for err in errors:
        if err.strip():
            print(err, file=sys.stderr)
    figures = {"processes": args.processes, "seconds": args.seconds, "wall_seconds": round(wall, 1),
               **check(store, logs, args.sample), "tracebacks": tracebacks}
    ok = (figures["integrity_check"] == "ok" and figures["rows"] > 0
          and all(figures[k] == 0 for k in ("lost", "duplicates", "mismatches", "unlogged", "unlike_alone",
                                            "tracebacks")))
    lines = [f"# Score store stress test ({'passed' if ok else 'FAILED'})", "",
             f"`python benchmarks/store_stress.py --processes {args.processes} --seconds {args.seconds:g} "
             f"--pool {args.pool} --sample {args.sample}` on {os.cpu_count()} cores (load average before: "
             f"{load:.1f}).", "", "| figure | value |", "|---|---|",
             *(f"| {key} | {value} |" for key, value in figures.items())]
    (args.out / "README.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
