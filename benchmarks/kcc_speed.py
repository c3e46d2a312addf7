"""KCC speed on this machine: the fast NTK, the reference vmap(jacrev) NTK, per-sample backward
loops and the forward + backward limit, all on the same networks in the same run.

    python benchmarks/kcc_speed.py --n 20 --batch-size 64 --out results/kcc-speed/README.md

For each of ``--n`` sampled NB201 architectures (C=16, N=5, CIFAR-10 batch) it times:
  * ``forward + backward``: one training-mode forward of the batch and one backward of the summed
    logits (parameter gradients), what one SGD step's gradient costs: the physical limit that
    per-sample gradients can approach.
  * ``loop, BN train``: how earlier NTK-NAS code (TE-NAS) computes Theta: one forward of the batch
    in train mode, then one ``autograd.grad`` per sample through the whole batch graph, rows
    stacked into J, Theta = J J^T. Each backward pass costs a full batch: O(m^2) work.
  * ``loop, frozen BN``: the default Theta by a per-sample Python loop (each sample forward and
    backward alone, BN frozen at the batch statistics): O(m) work, m small passes.
  * ``reference``: the default Theta by ``vmap(jacrev)`` per-parameter Jacobian blocks, J J^T in
    float64 (``empirical_ntk(method="reference")``; the default until the fast path).
  * ``fast``: the default now, one batched forward + backward with per-layer contractions
    (:mod:`searchkit.metrics.ntk_fast`).
Each NTK column is one KCC score (NTK + eq. 9). It also breaks both NTK paths into stages (network
construction, batch statistics, Jacobian / forward, float64 conversion, Gram, backward, contractions,
eq. 9, the store write). On the first ``--check`` architectures it checks the loops against the
NTK paths, times ``reference bn=train`` and compares the float32 Theta and KCC of both paths with a
float64 computation of the same network (the rounding each path carries). Then it measures the peak
resident memory of one KCC score of the largest NB201 network (every edge ``nor_conv_3x3``) at
batch 128, each mode in a fresh process.

``--breakdown-only`` writes only the reference path's stage breakdown (how the figures before the
fast path were taken: results/kcc-speed/before.md).

``--sweep`` (issue 28) instead measures the cost of one Theta against the batch size:

    python benchmarks/kcc_speed.py --sweep --threads 2 --sizes 64 128 256 512 1024 --outputs sum centred \
        --out results/kcc-speed/batch-sweep.md

for the largest NB201 cell (every edge ``nor_conv_3x3``) and a median one (the median parameter count
of 200 cells sampled with seed 0; :func:`median_cell`), C=16 N=5, CIFAR-10 batch of m (data seed 0),
default fast NTK with ``output`` sum and centred: each (cell, output, m) in a fresh process, its
seconds (the ``empirical_ntk`` call alone) and its peak resident memory (``VmHWM``: the process's
whole life, data loading included). ``benchmarks/gpu_check.py`` runs the same points on a GPU.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from memory_bound import run_measured  # benchmarks/ is sys.path[0] when run as a script
from searchkit.data import get_dataset, scoring_batch
from searchkit.metrics import ntk_fast
from searchkit.metrics.kcc import KCC, kcc
from searchkit.metrics.ntk import batch_statistics, empirical_ntk, jacobian, train_mode
from searchkit.runtime import build_network
from searchkit.scoring import ScoringRecipe
from searchkit.spaces import get_space
from searchkit.store import ScoreStore

LARGEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
FB = "forward + backward"


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
    """Per-sample loop with BN frozen at the batch statistics (the default Theta): m forward+backward passes."""
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
    """One training-mode forward of the batch and one backward of the summed logits (parameter gradients)."""
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
    blocks.clear()
    theta, t["Gram J J^T"] = timed(lambda: sum(j @ j.T for j in rows))
    rows.clear()
    value, t["eq. 9 (eigh + SVD)"] = timed(lambda: kcc(theta, batch.y, batch.num_classes))
    _, t["store write"] = timed(lambda: store.put_many(setting, [(KCC().key(), text, value, 1.0)]))
    return t


def fast_stages(net: torch.nn.Module, batch, store: ScoreStore, setting, text: str) -> dict[str, float]:
    """Seconds of each stage of one default KCC score by the fast path: the forward (batch statistics
    included), the backward with the per-layer contractions, the contractions alone, eq. (9), the store."""
    timings: dict[str, float] = {}
    theta = ntk_fast.fast_ntk(net, batch.x, timings=timings)
    t = {"forward (with batch statistics)": timings["forward"], "backward (with contractions)": timings["backward"],
         "of which per-layer contractions": timings["contractions"]}
    value, t["eq. 9 (eigh + SVD)"] = timed(lambda: kcc(theta, batch.y, batch.num_classes))
    _, t["store write"] = timed(lambda: store.put_many(setting, [(KCC().key(), "fast" + text, value, 1.0)]))
    return t


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def kcc_rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


def _setup(batch_size: int):
    space, splits = get_space("nb201"), get_dataset("cifar10")
    batch = scoring_batch(splits, batch_size, 0)
    setting = ScoringRecipe("nb201", "cifar10", batch_size=batch_size, batch_fingerprint=batch.fingerprint()).setting()
    return space, splits, batch, setting


def breakdown(n: int, batch_size: int) -> dict:
    """Median seconds per reference stage over ``n`` sampled NB201 architectures (seed 1), with
    network construction and the forward + backward limit beside them."""
    space, splits, batch, setting = _setup(batch_size)
    rng = np.random.default_rng(1)
    stages: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp, ScoreStore(Path(tmp) / "scores.db") as store:
        for _ in range(n):
            arch = space.sample(rng)
            net, seconds = timed(lambda: build_network(space, arch, splits, 0, {"C": 16, "N": 5}))
            row = {"network construction": seconds, **reference_stages(net, batch, store, setting, space.encode(arch))}
            _, row[FB + " (limit)"] = timed(lambda: forward_backward(net, batch.x))
            for name, value in row.items():
                stages.setdefault(name, []).append(value)
    return {name: statistics.median(values) for name, values in stages.items()}


def speed(n: int, batch_size: int, check: int) -> dict:
    """Every column on the same ``n`` networks (seed 0), breakdowns, agreement and float64 errors."""
    space, splits, batch, setting = _setup(batch_size)
    rng = np.random.default_rng(0)
    methods = {"loop, BN train": loop_ntk, "loop, frozen BN": frozen_loop_ntk,
               "reference (vmap jacrev)": lambda net, x: empirical_ntk(net, x, method="reference"),
               "fast (default)": empirical_ntk}
    times: dict[str, list[float]] = {name: [] for name in [FB, *methods, "reference bn=train"]}
    stages = {"network construction": [], "reference": {}, "fast": {}}
    ratio, agree, errors = [], {"fast vs reference": 0.0, "fast vs reference, KCC": 0.0,
                                "loop, frozen BN vs fast": 0.0, "loop, BN train vs reference bn=train": 0.0}, {}
    with tempfile.TemporaryDirectory() as tmp, ScoreStore(Path(tmp) / "scores.db") as store:
        for k in range(n):
            arch = space.sample(rng)
            text = space.encode(arch)
            net, seconds = timed(lambda: build_network(space, arch, splits, 0, {"C": 16, "N": 5}))
            stages["network construction"].append(seconds)
            times[FB].append(timed(lambda: forward_backward(net, batch.x))[1])
            theta, value = {}, {}
            for name, fn in methods.items():
                start = time.perf_counter()
                theta[name] = fn(net, batch.x)
                value[name] = kcc(theta[name], batch.y, 10)
                times[name].append(time.perf_counter() - start)
            ratio.append(times["fast (default)"][-1] / times[FB][-1])
            for path, fn in (("reference", reference_stages), ("fast", fast_stages)):
                for stage, seconds in fn(net, batch, store, setting, text).items():
                    stages[path].setdefault(stage, []).append(seconds)
            fast, ref = theta["fast (default)"], theta["reference (vmap jacrev)"]
            agree["fast vs reference"] = max(agree["fast vs reference"], rel_diff(fast, ref))
            agree["fast vs reference, KCC"] = max(agree["fast vs reference, KCC"],
                                                  kcc_rel(value["fast (default)"], value["reference (vmap jacrev)"]))
            agree["loop, frozen BN vs fast"] = max(agree["loop, frozen BN vs fast"], rel_diff(theta["loop, frozen BN"], fast))
            if k < check:
                start = time.perf_counter()
                exact = empirical_ntk(net, batch.x, bn="train")
                kcc(exact, batch.y, 10)
                times["reference bn=train"].append(time.perf_counter() - start)
                agree["loop, BN train vs reference bn=train"] = max(agree["loop, BN train vs reference bn=train"],
                                                                    rel_diff(theta["loop, BN train"], exact))
                truth = ntk_fast.fast_ntk(copy.deepcopy(net).double(), batch.x.double())
                true_kcc = kcc(truth, batch.y, 10)
                for path, name in (("reference", "reference (vmap jacrev)"), ("fast", "fast (default)")):
                    old = errors.get(path, (0.0, 0.0))
                    errors[path] = (max(old[0], rel_diff(theta[name], truth)), max(old[1], kcc_rel(value[name], true_kcc)))
    median = {name: statistics.median(v) for name, v in times.items() if v}
    return {"median_s": median, "count": {k: len(v) for k, v in times.items()},
            "fast_over_fb": statistics.median(ratio), "agree": agree, "float64_errors": errors,
            "construction": statistics.median(stages["network construction"]),
            "stages": {path: {s: statistics.median(v) for s, v in stages[path].items()} for path in ("reference", "fast")}}


def peak_memory(mode: str, batch_size: int) -> float:
    """Peak RSS (MB) of a fresh process scoring the largest network once in ``mode``."""
    return run_measured(f"from kcc_speed import one_score; one_score({mode!r}, {batch_size})")[0]


def one_score(mode: str, batch_size: int) -> None:
    space, splits = get_space("nb201"), get_dataset("cifar10")
    batch = scoring_batch(splits, batch_size, 0)
    net = build_network(space, space.decode(LARGEST), splits, 0, {"C": 16, "N": 5})
    if mode == "loop, frozen BN":
        kcc(frozen_loop_ntk(net, batch.x), batch.y, 10)
    elif mode == "forward only (no_grad)":
        with torch.no_grad():
            net(batch.x)
    elif mode == FB:
        forward_backward(net, batch.x)
    else:
        kcc(empirical_ntk(net, batch.x, method="reference" if mode.startswith("reference") else "fast"), batch.y, 10)


SWEEP_SIZES = (64, 128, 256, 512, 1024)


def median_cell(splits=None, build: dict | None = None, n: int = 200) -> str:
    """The NB201 cell of median parameter count among ``n`` sampled with seed 0 (the lower middle one)."""
    space = get_space("nb201")
    splits = splits or get_dataset("cifar10")
    rng = np.random.default_rng(0)
    texts = [space.encode(space.sample(rng)) for _ in range(n)]
    counts = [sum(p.numel() for p in build_network(space, space.decode(t), splits, 0, build or {}).parameters())
              for t in texts]
    return texts[int(np.argsort(counts, kind="stable")[(n - 1) // 2])]


def sweep_point(text: str, m: int, output: str, device: str = "cpu", threads: int = 2, path: str | None = None,
                splits=None, build: dict | None = None) -> tuple[float, float | None]:
    """Seconds of one ``empirical_ntk`` of the NB201 cell ``text`` (init seed 0) on a batch of m (data
    seed 0), and the peak CUDA memory it allocated (MiB; None on the CPU). Writes the seconds to ``path``
    when given (for a fresh process, :func:`batch_sweep`)."""
    torch.set_num_threads(threads)
    space, splits = get_space("nb201"), splits or get_dataset("cifar10")
    dev = torch.device(device)
    batch = scoring_batch(splits, m, 0).to(dev)
    net = build_network(space, space.decode(text), splits, 0, build or {}).to(dev)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
    start = time.perf_counter()
    empirical_ntk(net, batch.x, output=output)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else None
    if path is not None:
        Path(path).write_text(repr(seconds))
    return seconds, peak


def batch_sweep(sizes: list[int], outputs: list[str], threads: int) -> list[tuple[str, str, int, float, float]]:
    """(cell name, output, m, seconds, peak RSS MiB) for the largest and the median cell, each point in a
    fresh process (:func:`sweep_point`, :func:`memory_bound.run_measured`)."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "seconds"
        for name, text in (("largest", LARGEST), ("median", median_cell())):
            for output in outputs:
                for m in sizes:
                    peak = run_measured(f"from kcc_speed import sweep_point; "
                                        f"sweep_point({text!r}, {m}, {output!r}, 'cpu', {threads}, {str(path)!r})")[0]
                    rows.append((name, output, m, float(path.read_text()), peak))
                    print(rows[-1], flush=True)
    return rows


def sweep_lines(rows: list[tuple[str, str, int, float, float]], args) -> list[str]:
    return [
        "# Cost of one NTK against the batch size (CPU)", "",
        f"Command: `python benchmarks/kcc_speed.py --sweep --threads {args.threads} --sizes "
        f"{' '.join(map(str, args.sizes))} --outputs {' '.join(args.outputs)} --out {args.out}`", "",
        f"{args.threads} torch threads; NB201 C=16 N=5; the largest cell ({LARGEST}) and the median one by parameter "
        "count (200 cells, seed 0); CIFAR-10 batch of m (data seed 0); default fast NTK (float32 per-layer products, "
        "float64 accumulation); one fresh process per point. Seconds: the `empirical_ntk` call; peak RSS: the "
        f"process's whole life (data loading included). Machine load at the start: {os.getloadavg()[0]:.2f}.", "",
        "| cell | output | m | seconds | peak RSS (MiB) |", "|---|---|---|---|---|",
        *(f"| {n} | {o} | {m} | {s:.2f} | {p:.0f} |" for n, o, m, s, p in rows),
    ]


def breakdown_lines(stages: dict, args) -> list[str]:
    return [
        "# Where one KCC score's time goes (reference vmap(jacrev) path, CPU)", "",
        f"Command: `python benchmarks/kcc_speed.py --breakdown-only --n {args.n} --batch-size {args.batch_size} "
        f"--out {args.out}`", "",
        f"Threads: {torch.get_num_threads()}. Median seconds per stage over {args.n} NB201 cells (C=16, N=5), "
        f"CIFAR-10 batch of {args.batch_size}.", "",
        "| stage | median s |", "|---|---|", *(f"| {k} | {v:.3f} |" for k, v in stages.items()),
    ]


def report_lines(result: dict, memory: dict, params: int, args) -> list[str]:
    med, count = result["median_s"], result["count"]
    fb, fast = med[FB], med["fast (default)"]
    rows = [f"| {k} | {v:.3f} | {v / fb:.2f} | {count[k]} |" for k, v in med.items()]
    errors = result["float64_errors"]
    return [
        "# KCC speed and memory (CPU)", "",
        f"Command: `python benchmarks/kcc_speed.py --n {args.n} --batch-size {args.batch_size} --check {args.check} "
        f"--out {args.out}`", "",
        f"Threads: {torch.get_num_threads()}. NB201 C=16 N=5, CIFAR-10 batch of {args.batch_size}; one KCC score "
        "(NTK + eq. 9) per architecture and method, every method on the same networks in the same run.", "",
        "| method | median s/arch | / (forward + backward) | architectures |", "|---|---|---|---|", *rows, "",
        f"Fast KCC / (forward + backward), median of the per-architecture ratios: {result['fast_over_fb']:.2f}. "
        f"Fast vs the reference: {med['reference (vmap jacrev)'] / fast:.1f}x; vs the per-sample loop "
        f"(loop, frozen BN): {med['loop, frozen BN'] / fast:.1f}x; vs TE-NAS's loop: {med['loop, BN train'] / fast:.0f}x.",
        "",
        "Largest relative differences (Theta: max |A - B| / max |B|; KCC: |a - b| / b): " + "; ".join(
            f"{k}: {v:.1e}" for k, v in result["agree"].items()) + ".", "",
        f"Float32 rounding, first {args.check} architectures, against the same networks in float64 (Theta, KCC): "
        + "; ".join(f"{p} {t:.1e}, {c:.1e}" for p, (t, c) in errors.items()) + ".", "",
        f"## Stages (median seconds over the {args.n} architectures)", "",
        f"Network construction: {result['construction']:.3f} s (not part of the NTK columns).", "",
        "| reference (vmap jacrev) | s | | fast (default) | s |", "|---|---|---|---|---|",
        *_side_by_side(result["stages"]["reference"], result["stages"]["fast"]), "",
        f"## Peak resident memory, largest NB201 network ({params / 1e6:.2f} M parameters), batch 128, fresh process", "",
        "| mode | peak RSS (MB) |", "|---|---|", *(f"| {k} | {v:.0f} |" for k, v in memory.items()),
    ]


def _side_by_side(left: dict, right: dict) -> list[str]:
    a, b = list(left.items()), list(right.items())
    rows = []
    for i in range(max(len(a), len(b))):
        la = f"{a[i][0]} | {a[i][1]:.3f}" if i < len(a) else " | "
        lb = f"{b[i][0]} | {b[i][1]:.3f}" if i < len(b) else " | "
        rows.append(f"| {la} | | {lb} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--check", type=int, default=3, help="architectures checked against bn=train and float64")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--breakdown-only", action="store_true", help="only the reference path's stage breakdown")
    parser.add_argument("--sweep", action="store_true", help="seconds and memory of one NTK against the batch size")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SWEEP_SIZES), help="--sweep: batch sizes")
    parser.add_argument("--outputs", nargs="+", default=["sum", "centred"], help="--sweep: NTK output modes")
    parser.add_argument("--threads", type=int, default=2, help="--sweep: torch threads (default 2)")
    args = parser.parse_args()
    if args.sweep:
        lines = sweep_lines(batch_sweep(args.sizes, args.outputs, args.threads), args)
    elif args.breakdown_only:
        lines = breakdown_lines(breakdown(args.n, args.batch_size), args)
    else:
        result = speed(args.n, args.batch_size, args.check)
        memory = {mode: peak_memory(mode, 128) for mode in
                  ("forward only (no_grad)", FB, "fast (default)", "reference (vmap jacrev)", "loop, frozen BN")}
        params = sum(p.numel() for p in build_network(get_space("nb201"), get_space("nb201").decode(LARGEST),
                                                      get_dataset("cifar10"), 0, {}).parameters())
        lines = report_lines(result, memory, params, args)
        print(json.dumps(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
