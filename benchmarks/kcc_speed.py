"""KCC speed on this machine: our torch.func NTK against per-sample backward loops, same run.

    python benchmarks/kcc_speed.py --n 20 --batch-size 64 --out results/kcc-speed/README.md

For each of ``--n`` sampled NB201 architectures (C=16, N=5, CIFAR-10 batch) it times one KCC
score (NTK + eq. 9) computed three ways:
  * ``loop, BN train``: how earlier NTK-NAS code (TE-NAS) computes Theta: one forward of the batch
    in train mode, then one ``autograd.grad`` per sample through the whole batch graph, rows
    stacked into J, Theta = J J^T. Each backward pass costs a full batch: O(m^2) work.
  * ``loop, frozen BN``: the same Theta as ours, by a per-sample Python loop (each sample
    forward and backward alone, BN frozen at the batch statistics): O(m) work, m small passes.
  * ``ours``: the default, ``vmap(jacrev)`` per-sample gradients with frozen batch statistics.
On the first ``--check`` architectures it also checks the loops against ours: ``loop, frozen BN``
against ``ours`` and ``loop, BN train`` against ``ours bn=train`` (``jacrev`` through the batch
statistics), and times the latter. Then it measures the peak resident memory of one KCC score of
the largest NB201 network (every edge ``nor_conv_3x3``) at batch 128, each in a fresh process.
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from memory_bound import run_measured  # benchmarks/ is sys.path[0] when run as a script
from searchkit.data import get_dataset, scoring_batch
from searchkit.metrics.kcc import KCC, kcc
from searchkit.metrics.ntk import batch_statistics, empirical_ntk, jacobian, train_mode
from searchkit.runtime import build_network, score_setting
from searchkit.spaces import get_space
from searchkit.store import ScoreStore, metric_key

LARGEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def _gram(rows: list[torch.Tensor]) -> torch.Tensor:
    j = torch.stack(rows).double()
    return j @ j.T


def loop_ntk(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """TE-NAS's loop: Theta from m ``autograd.grad`` calls through one train-mode batch graph."""
    params = [p for p in net.parameters() if p.requires_grad]
    with train_mode(net, True):
        out = net(x).sum(1)
        return _gram([torch.cat([g.reshape(-1) for g in torch.autograd.grad(out[i], params, retain_graph=True)])
                      for i in range(x.shape[0])])


def frozen_loop_ntk(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Per-sample loop with BN frozen at the batch statistics (ours' Theta): m forward+backward passes."""
    frozen = copy.deepcopy(net)
    frozen.load_state_dict(batch_statistics(net, x), strict=False)
    frozen.eval()
    params = [p for p in frozen.parameters() if p.requires_grad]
    return _gram([torch.cat([g.reshape(-1) for g in torch.autograd.grad(frozen(x[i:i + 1]).sum(), params)])
                  for i in range(x.shape[0])])


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def forward_backward(net: torch.nn.Module, x: torch.Tensor) -> None:
    """The physical limit: one training-mode forward of the batch and one backward of the summed logits
    (parameter gradients), what one SGD step's gradient costs."""
    net.zero_grad(set_to_none=True)
    with train_mode(net, True):
        net(x).sum().backward()
    net.zero_grad(set_to_none=True)


def reference_stages(net: torch.nn.Module, batch, store: ScoreStore, setting, text: str) -> dict[str, float]:
    """Seconds of each stage of one default KCC score by the reference ``vmap(jacrev)`` path, in order:
    the batch-statistics pass, the per-parameter Jacobian (``jacobian`` minus its own batch-statistics
    pass), the float64 conversion of its blocks, the Gram accumulation J J^T, eq. (9) (eigendecomposition
    and the singular value problem) and the store write of the value."""
    m = batch.x.shape[0]
    t = {}
    _, t["batch statistics"] = timed(lambda: batch_statistics(net, batch.x))
    blocks, seconds = timed(lambda: jacobian(net, batch.x))
    t["Jacobian"] = seconds - t["batch statistics"]
    rows, t["float64 conversion"] = timed(lambda: [b.reshape(m, -1).double() for b in blocks.values()])
    del blocks
    theta, t["Gram J J^T"] = timed(lambda: sum(j @ j.T for j in rows))
    del rows
    value, t["eq. 9 (eigh + SVD)"] = timed(lambda: kcc(theta, batch.y, batch.num_classes))
    _, t["store write"] = timed(lambda: store.put_many(setting, [(metric_key(KCC()), text, value, 1.0)]))
    return t


def breakdown(n: int, batch_size: int) -> dict:
    """Median seconds per stage over ``n`` sampled NB201 architectures (seed 1, not the speed sample),
    with network construction and the forward + backward limit beside them."""
    space, splits = get_space("nb201"), get_dataset("cifar10")
    batch = scoring_batch(splits, batch_size, 0)
    setting = score_setting("nb201", {}, "cifar10", batch, 0, torch.device("cpu"))
    rng = np.random.default_rng(1)
    stages: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp, ScoreStore(Path(tmp) / "scores.db") as store:
        for _ in range(n):
            arch = space.sample(rng)
            net, seconds = timed(lambda: build_network(space, arch, splits, 0, {"C": 16, "N": 5}))
            row = {"network construction": seconds, **reference_stages(net, batch, store, setting, space.encode(arch))}
            _, row["forward + backward (limit)"] = timed(lambda: forward_backward(net, batch.x))
            for name, value in row.items():
                stages.setdefault(name, []).append(value)
    return {name: statistics.median(values) for name, values in stages.items()}


def speed(n: int, batch_size: int, check: int) -> dict:
    space, splits = get_space("nb201"), get_dataset("cifar10")
    batch = scoring_batch(splits, batch_size, 0)
    rng = np.random.default_rng(0)
    methods = {"loop, BN train": loop_ntk, "loop, frozen BN": frozen_loop_ntk, "ours": empirical_ntk}
    times = {name: [] for name in [*methods, "ours bn=train"]}
    gaps = {"loop, frozen BN vs ours": 0.0, "loop, BN train vs ours bn=train": 0.0}
    for k in range(n):
        net = build_network(space, space.sample(rng), splits, 0, {"C": 16, "N": 5})
        theta = {}
        for name, fn in methods.items():
            start = time.perf_counter()
            theta[name] = fn(net, batch.x)
            kcc(theta[name], batch.y, 10)
            times[name].append(time.perf_counter() - start)
        if k < check:
            start = time.perf_counter()
            exact = empirical_ntk(net, batch.x, bn="train")
            kcc(exact, batch.y, 10)
            times["ours bn=train"].append(time.perf_counter() - start)
            gaps["loop, BN train vs ours bn=train"] = max(gaps["loop, BN train vs ours bn=train"], rel_diff(theta["loop, BN train"], exact))
            gaps["loop, frozen BN vs ours"] = max(gaps["loop, frozen BN vs ours"], rel_diff(theta["loop, frozen BN"], theta["ours"]))
    return {"median_s": {k: statistics.median(v) for k, v in times.items() if v},
            "count": {k: len(v) for k, v in times.items()}, "max_rel_diff": gaps}


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def peak_memory(mode: str, batch_size: int) -> float:
    """Peak RSS (MB) of a fresh process scoring the largest network once in ``mode``."""
    return run_measured(f"from kcc_speed import one_score; one_score({mode!r}, {batch_size})")[0]


def one_score(mode: str, batch_size: int) -> None:
    space, splits = get_space("nb201"), get_dataset("cifar10")
    batch = scoring_batch(splits, batch_size, 0)
    net = build_network(space, space.decode(LARGEST), splits, 0, {"C": 16, "N": 5})
    if mode == "loop, frozen BN":
        kcc(frozen_loop_ntk(net, batch.x), batch.y, 10)
    elif mode == "baseline":
        with torch.no_grad():
            net(batch.x)
    else:
        kcc(empirical_ntk(net, batch.x, bn=mode), batch.y, 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--check", type=int, default=3, help="architectures checked against the loops")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--breakdown-only", action="store_true", help="only the per-stage breakdown")
    args = parser.parse_args()
    if args.breakdown_only:
        stages = breakdown(args.n, args.batch_size)
        lines = [
            "# Where one KCC score's time goes (reference vmap(jacrev) path, CPU)", "",
            f"Command: `python benchmarks/kcc_speed.py --breakdown-only --n {args.n} --batch-size {args.batch_size} "
            f"--out {args.out}`", "",
            f"Threads: {torch.get_num_threads()}. Median seconds per stage over {args.n} NB201 cells (C=16, N=5), "
            f"CIFAR-10 batch of {args.batch_size}.", "",
            "| stage | median s |", "|---|---|", *(f"| {k} | {v:.3f} |" for k, v in stages.items()),
        ]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")
        print("\n".join(lines))
        return
    result = speed(args.n, args.batch_size, args.check)
    memory = {mode: peak_memory(mode, 128) for mode in ("baseline", "batchstats", "loop, frozen BN")}
    params = sum(p.numel() for p in build_network(get_space("nb201"), get_space("nb201").decode(LARGEST),
                                                  get_dataset("cifar10"), 0, {}).parameters())
    lines = [
        "# KCC speed and memory (CPU)", "",
        f"Command: `python benchmarks/kcc_speed.py --n {args.n} --batch-size {args.batch_size} "
        f"--check {args.check} --out {args.out}`", "",
        f"Threads: {torch.get_num_threads()}. NB201 C=16 N=5, CIFAR-10 batch of {args.batch_size}; "
        "one KCC score (NTK + eq. 9) per architecture, every method on the same networks in the same run.", "",
        "| method | median s/arch | architectures |", "|---|---|---|",
        *(f"| {k} | {v:.3f} | {result['count'][k]} |" for k, v in result["median_s"].items()), "",
        "Largest relative difference of Theta (max |A - B| / max |B|): " + "; ".join(
            f"{k}: {v:.1e}" for k, v in result["max_rel_diff"].items()) + ".", "",
        f"Peak resident memory, largest NB201 network ({params / 1e6:.2f} M parameters), batch 128, fresh process:", "",
        "| mode | peak RSS (MB) |", "|---|---|", *(f"| {k} | {v:.0f} |" for k, v in memory.items()),
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
