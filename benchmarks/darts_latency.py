"""A DARTS-space search under a CPU latency budget measured on this machine (issue 26, ask 6).

What a user without a hardware table does: ``constraint: {device: cpu, latency_ms: B}`` measures
each queried cell's latency (:class:`searchkit.hardware.MeasuredLatency`: the built proxy network,
batch 1, one thread, the median of ``--repeats`` timed passes) and keeps only cells within B.

1. Sizing: the latency of ``--sample`` uniform DARTS cells (the search's proxy network, which is
   also the darts-study protocol's network: 5 cells, C = 8); the budget is their ``--quantile``.
2. Per seed, two searches with the CLI (REA on ``--metric``, ``--archs`` scores), one free and one
   under the budget.
3. Re-timing: every selected cell's latency measured ``--rounds`` more times (each round a fresh
   network and the median of ``--repeats`` passes): median, spread (min-max, IQR) and the share of
   rounds within the budget. The search's guard holds for the measurement it made; this says how
   a later measurement of the same network varies.
4. Each selection trained with ``searchkit evaluate --preset <--protocol>`` (CIFAR-10, the reduced
   DARTS recipe): what the budget cost in accuracy. Steps 1-3 come first for every seed (they need
   a quiet machine; the script says when they are done), the trainings after.

Resumable: the sizing, each finished search (``best.json``), each re-timing and each finished
training (``evaluation.json``; an interrupted one resumes from its checkpoint) are kept; rerun
the same command. Latencies need a quiet machine: run it alone.

    python benchmarks/darts_latency.py --out results/hardware-aware/darts-cpu

Writes ``sizing.csv``, ``<seed>-free/`` and ``<seed>-budget/`` (search runs, each with its
``retiming.json`` and ``train/``), ``retiming.csv`` and ``summary.md`` into --out.
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from searchkit.hardware import MEASURED_DEVICE, MeasuredLatency
from searchkit.spaces.darts import DartsSpace

PROXY = {"C": 8, "layers": 5}   # configs/darts-cifar10.yaml's space.build, darts-study's network


def latency_model(space: DartsSpace, repeats: int, seed: int) -> MeasuredLatency:
    """The search's cost model (``space.cost_model``, as a constrained search builds it: batch 1, 5
    warm-up passes, one thread) with ``repeats``."""
    return space.cost_model(MEASURED_DEVICE, repeats=repeats, build=PROXY, seed=seed)


def size_budget(space: DartsSpace, out: Path, sample: int, repeats: int, quantile: float) -> float:
    """The ``quantile`` of ``sample`` uniform cells' latencies (ms); the cells in ``sizing.csv``."""
    path = out / "sizing.csv"
    if not path.exists():
        rng = np.random.default_rng(26)
        texts = [space.encode(space.sample(rng)) for _ in range(sample)]
        latencies = [latency_model(space, repeats, seed=0).cost(text) for text in texts]
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["arch", "latency_ms"])
            writer.writerows(zip(texts, latencies))
    with open(path, newline="") as handle:
        latencies = [float(row["latency_ms"]) for row in csv.DictReader(handle)]
    return round(float(np.quantile(latencies, quantile)), 2)


def search(run: Path, seed: int, budget_ms: float | None, args: argparse.Namespace) -> dict:
    """best.json of one CLI search, scores and latencies only (run unless it finished)."""
    best = run / "best.json"
    if not best.exists():
        command = [sys.executable, "-m", "searchkit", "search", "--config", "configs/darts-cifar10.yaml",
                   "--out", str(run), "--overwrite", "--threads", "1", "--quiet", f"seed={seed}",
                   f"metric.name={args.metric}", "metric.options={}", f"budget.archs={args.archs}",
                   "strategy.options={population: 20, sample_size: 5}", "evaluate.method=none",
                   "hardware.device=cpu", f"hardware.repeats={args.repeats}"]
        if budget_ms is not None:
            command.append(f"constraint={{device: cpu, latency_ms: {budget_ms}}}")
        subprocess.run(command, check=True)
    return json.loads(best.read_text())


def retime(space: DartsSpace, run: Path, text: str, rounds: int, repeats: int) -> np.ndarray:
    """``rounds`` fresh measurements (ms) of one cell, each a new network (init seed = round);
    kept in ``run/retiming.json``."""
    path = run / "retiming.json"
    if not path.exists():
        times = [latency_model(space, repeats, seed=r).cost(text) for r in range(rounds)]
        path.write_text(json.dumps({"arch": text, "repeats": repeats, "latency_ms": times}))
    return np.array(json.loads(path.read_text())["latency_ms"])


def train(run: Path, text: str, protocol: str) -> dict:
    """evaluation.json of the CLI's training of ``text`` with ``protocol`` (run unless it finished)."""
    result = run / "evaluation.json"
    if not result.exists():  # an interrupted training resumes from its checkpoint
        where = ["--resume", str(run)] if (run / "config.yaml").exists() else \
            ["--space", "darts", "--arch", text, "--method", "train", "--preset", protocol, "--out", str(run)]
        subprocess.run([sys.executable, "-m", "searchkit", "evaluate", *where, "--quiet"], check=True)
    return json.loads(result.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--metric", default="synflow")
    parser.add_argument("--archs", type=int, default=100)
    parser.add_argument("--protocol", default="darts-study")
    parser.add_argument("--sample", type=int, default=50)
    parser.add_argument("--quantile", type=float, default=0.25)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    space = DartsSpace()
    budget = size_budget(space, args.out, args.sample, args.repeats, args.quantile)
    print(f"budget: {budget} ms (the {args.quantile:.0%} quantile of {args.sample} uniform cells' latency)")
    runs = [(seed, kind, args.out / f"{seed}-{kind}") for seed in args.seeds for kind in ("free", "budget")]
    measured = {}
    for seed, kind, run in runs:  # every latency first (quiet machine), then the trainings
        best = search(run, seed, budget if kind == "budget" else None, args)
        measured[run] = best, retime(space, run, best["arch"], args.rounds, args.repeats)
    print("latencies measured; training the selections", flush=True)
    rows = []
    for seed, kind, run in runs:
        best, times = measured[run]
        final = train(run / "train", best["arch"], args.protocol)
        rows.append({"seed": seed, "run": kind, "budget_ms": budget, "arch": best["arch"], "score": best["score"],
                     "search_latency_ms": best["hardware"]["cost"], "retimed_median_ms": float(np.median(times)),
                     "retimed_min_ms": float(times.min()), "retimed_max_ms": float(times.max()),
                     "retimed_iqr_ms": float(np.subtract(*np.percentile(times, [75, 25]))),
                     "rounds_within_budget": float(np.mean(times <= budget)), "test_accuracy": final["test_accuracy"],
                     "params_m": final["details"]["inference_params"] / 1e6,
                     "training_seconds": final["details"]["seconds"]})
    with open(args.out / "retiming.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    lines = [f"# DARTS under a measured CPU latency budget of {budget} ms", "",
             "| seed | run | search's latency (ms) | re-timed median [min, max] (ms) | IQR | rounds <= budget "
             "| params (M) | test acc (%) | training s |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['seed']} | {r['run']} | {r['search_latency_ms']:.2f} | {r['retimed_median_ms']:.2f} "
              f"[{r['retimed_min_ms']:.2f}, {r['retimed_max_ms']:.2f}] | {r['retimed_iqr_ms']:.2f} | "
              f"{r['rounds_within_budget']:.0%} | {r['params_m']:.3f} | {r['test_accuracy']:.2f} | "
              f"{r['training_seconds']:.0f} |" for r in rows]
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
