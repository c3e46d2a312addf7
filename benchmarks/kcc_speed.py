"""KCC speed on this machine: our torch.func NTK against a per-sample backward loop, same run.

    python benchmarks/kcc_speed.py --n 20 --batch-size 64 --out results/kcc-speed/README.md

For each of ``--n`` sampled NB201 architectures (C=16, N=5, CIFAR-10 batch) it times:
  * ``loop``: the way earlier NTK-NAS code (TE-NAS) computes the NTK: one forward of the batch,
    then one ``autograd.grad`` per sample, rows stacked into J, Theta = J J^T (BN on batch statistics);
  * ``ours bn=train``: the same Theta, vectorised with ``jacrev`` (checked equal to the loop);
  * ``ours bn=batchstats``: the default, per-sample gradients with frozen batch statistics (O(m)).
Then it measures the peak resident memory of one KCC score of the largest NB201 network (every
edge ``nor_conv_3x3``) at batch 128, each configuration in a fresh process.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from searchkit.data import get_dataset, scoring_batch
from searchkit.metrics.kcc import kcc
from searchkit.metrics.ntk import empirical_ntk, train_mode
from searchkit.runtime import build_network
from searchkit.spaces import get_space

LARGEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def loop_ntk(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Per-sample backward loop (the baseline): Theta from m separate ``autograd.grad`` calls."""
    params = [p for p in net.parameters() if p.requires_grad]
    with train_mode(net, True):
        out = net(x).sum(1)
        rows = [torch.cat([g.reshape(-1) for g in torch.autograd.grad(out[i], params, retain_graph=True)])
                for i in range(x.shape[0])]
    j = torch.stack(rows).double()
    return j @ j.T


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def speed(n: int, batch_size: int) -> dict:
    space, splits = get_space("nb201"), get_dataset("cifar10")
    batch = scoring_batch(splits, batch_size, 0)
    rng = np.random.default_rng(0)
    times = {"loop": [], "ours bn=train": [], "ours bn=batchstats": []}
    worst_gap = 0.0
    for _ in range(n):
        net = build_network(space, space.sample(rng), splits, 0, {"C": 16, "N": 5})
        reference, t_loop = timed(lambda: loop_ntk(net, batch.x))
        ours, t_train = timed(lambda: empirical_ntk(net, batch.x, bn="train"))
        _, t_fast = timed(lambda: kcc(empirical_ntk(net, batch.x), batch.y, 10))
        worst_gap = max(worst_gap, float((ours - reference).abs().max() / reference.abs().max()))
        for key, t in zip(times, (t_loop, t_train, t_fast)):
            times[key].append(t)
    return {"median_s": {k: statistics.median(v) for k, v in times.items()}, "max_rel_diff_train_vs_loop": worst_gap}


def peak_memory(mode: str, batch_size: int) -> float:
    """Peak RSS (MB) of a fresh process scoring the largest network once in ``mode``."""
    code = (
        "import resource\n"
        "from benchmarks.kcc_speed import one_score\n"
        f"one_score({mode!r}, {batch_size})\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    return float(out.stdout.strip().splitlines()[-1])


def one_score(mode: str, batch_size: int) -> None:
    space, splits = get_space("nb201"), get_dataset("cifar10")
    batch = scoring_batch(splits, batch_size, 0)
    net = build_network(space, space.decode(LARGEST), splits, 0, {"C": 16, "N": 5})
    if mode == "loop":
        loop_ntk(net, batch.x)
    elif mode == "baseline":
        with torch.no_grad():
            net(batch.x)
    else:
        kcc(empirical_ntk(net, batch.x, bn=mode), batch.y, 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = speed(args.n, args.batch_size)
    memory = {mode: peak_memory(mode, 128) for mode in ("baseline", "batchstats", "train", "loop")}
    params = sum(p.numel() for p in build_network(get_space("nb201"), get_space("nb201").decode(LARGEST),
                                                  get_dataset("cifar10"), 0, {}).parameters())
    lines = [
        "# KCC speed and memory (CPU)", "",
        f"Command: `python benchmarks/kcc_speed.py --n {args.n} --batch-size {args.batch_size} --out {args.out}`", "",
        f"Threads: {torch.get_num_threads()}. NB201 C=16 N=5, CIFAR-10 batch of {args.batch_size}, "
        f"median over {args.n} sampled architectures, same run.", "",
        "| NTK computation | median s/arch |", "|---|---|",
        *(f"| {k} | {v:.3f} |" for k, v in result["median_s"].items()), "",
        f"Largest relative difference between the loop's Theta and ours (bn=train): "
        f"{result['max_rel_diff_train_vs_loop']:.2e}.", "",
        f"Peak resident memory, largest NB201 network ({params / 1e6:.2f} M parameters), batch 128, fresh process:", "",
        "| mode | peak RSS (MB) |", "|---|---|", *(f"| {k} | {v:.0f} |" for k, v in memory.items()),
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
