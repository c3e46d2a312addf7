"""One GPU check: CUDA tests, KCC scoring rate, the NTK on the device vs the CPU reference, and
mixed-precision training throughput; writes OUT/README.md.

    python benchmarks/gpu_check.py --device cuda --out results/gpu            # the full check (< 8 min)
    python benchmarks/gpu_check.py --device cpu --cells 4 --workers 1 --ntk-cells 1 --ntk-batch 8 \\
        --train-images 64 --tiny --dataset synthetic --no-pytest --out /tmp/gpu   # a smoke run (seconds)

Sections, in order (each one timed, so a slow one shows):
  1. ``pytest -m cuda`` (the CUDA-marked tests; they skip without CUDA), unless ``--no-pytest``.
  2. The NTK on ``--device`` against the CPU reference (``vmap(jacrev)``) on ``--ntk-cells`` NB201
     cells: in float64 (the same Theta to ~1e-12: the algorithms are exact) and in float32 (what
     scoring uses: rounding, and TF32 convolutions where cuDNN allows them), with the KCC values,
     and the seconds of the fast and the reference path on the device.
  3. KCC throughput: ``--cells`` sampled NB201 cells scored by :class:`searchkit.scoring.ScoreRunner`
     with 1 process (in this one) and with each count of ``--workers`` processes sharing the device;
     architectures per second after the first result (start-up excluded) and overall, and the
     projected time for all 15,625 cells at the best rate.
  4. The NTK against the batch size (issue 28): seconds and peak device memory of one Theta
     (``output`` sum and centred) of the largest and a median NB201 cell at each ``--sweep-sizes`` m
     (:func:`kcc_speed.sweep_point`, the CPU sweep's points: ``kcc_speed.py --sweep``).
  5. Training throughput with :func:`searchkit.train.trainer.train` (float16 autocast + loss scaling on
     CUDA, the trainer's ``amp``): NB201 (protocol nb201) and DARTS_V2 (protocol darts: C=36, 20 cells,
     auxiliary head), ``--train-images`` images for ``--train-epochs`` epochs, images per second.

Data: ``--dataset`` (default cifar10 from the shared data); when it cannot be loaded, the check
uses seeded synthetic 3x32x32 images of 10 classes (timings do not depend on pixel values) and
says so. ``--tiny`` shrinks the networks (C=4, N=1; DARTS C=4, 5 cells) for a smoke run.
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from searchkit.data import get_dataset, scoring_batch
from searchkit.data.base import DatasetSplits
from searchkit.errors import SearchkitError
from searchkit.metrics.kcc import KCC, kcc
from searchkit.metrics.ntk import empirical_ntk
from searchkit.runtime import build_network
from searchkit.spaces import get_space
from searchkit.spaces.nb201 import NUM_ARCHS
from searchkit.train.trainer import get_protocol, train
from searchkit.scoring import ScoreRunner, ScoringRecipe
from searchkit.workers import Parallel

sys.path.insert(0, str(Path(__file__).resolve().parent))  # its sibling benchmarks, also when imported by a test
from kcc_speed import LARGEST, SWEEP_SIZES, median_cell, sweep_point  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NB201_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
DARTS_V2 = (  # Liu et al. 2019, as published (spelled out: the genotypes file is not needed)
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], "
    "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)


def load_data(name: str) -> tuple[str, DatasetSplits, str]:
    """(dataset name, splits, note): ``name``, or synthetic CIFAR-shaped images when it is missing."""
    try:
        return name, get_dataset(name), ""
    except SearchkitError as err:
        note = f"{name} could not be loaded ({err}); synthetic 3x32x32 images of 10 classes instead."
        return "synthetic", get_dataset("synthetic", n_train=5000, n_test=500, n_valid=0), note


def run_pytest(timeout: int) -> tuple[str, float]:
    """The summary line of ``pytest -m cuda`` and its seconds."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider"], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT)})
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    summary = lines[-1] if lines else f"(no output; exit {proc.returncode})"
    return f"{summary} (exit code {proc.returncode})", time.perf_counter() - start


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.cpu() - b.cpu()).abs().max() / b.abs().max())


def timed(fn, device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    value = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return value, time.perf_counter() - start


def ntk_agreement(splits: DatasetSplits, device: torch.device, cells: int, batch_size: int, build: dict) -> dict:
    """Max relative Theta differences device-fast vs CPU-reference (float64, float32), max |KCC|
    difference (float32), and median seconds of the fast and reference NTK on the device (float32)."""
    space = get_space("nb201")
    batch = scoring_batch(splits, batch_size, 0)
    rng = np.random.default_rng(2)
    out = {"float64": 0.0, "float32": 0.0, "kcc": 0.0, "fast_s": [], "reference_s": []}
    for _ in range(cells):
        net = build_network(space, space.sample(rng), splits, 0, build)
        for name, dtype in (("float64", torch.float64), ("float32", torch.float32)):
            cpu_net, x = copy.deepcopy(net).to(dtype), batch.x.to(dtype)
            reference = empirical_ntk(cpu_net, x, method="reference")
            dev_net, dev_x = copy.deepcopy(cpu_net).to(device), x.to(device)
            fast, seconds = timed(lambda: empirical_ntk(dev_net, dev_x), device)
            out[name] = max(out[name], rel_diff(fast, reference))
            if name == "float32":
                out["fast_s"].append(seconds)
                out["reference_s"].append(timed(lambda: empirical_ntk(dev_net, dev_x, method="reference"), device)[1])
                c = splits.num_classes
                out["kcc"] = max(out["kcc"], abs(kcc(fast, batch.y.to(device), c) - kcc(reference, batch.y, c)))
    out["fast_s"], out["reference_s"] = statistics.median(out["fast_s"]), statistics.median(out["reference_s"])
    return out


def kcc_rate(dataset: str, device: torch.device, cells: int, workers: int, build: dict, batch_size: int) -> dict:
    """Score ``cells`` sampled NB201 cells with KCC on ``device`` in ``workers`` processes (1: this one)."""
    space = get_space("nb201")
    rng = np.random.default_rng(0)
    texts = list(dict.fromkeys(space.encode(space.sample(rng)) for _ in range(cells)))
    options = {} if dataset != "synthetic" else {"n_train": 5000, "n_test": 500, "n_valid": 0}
    recipe = ScoringRecipe("nb201", dataset, None, options, batch_size, 0, "train", {"kcc": KCC()}, 0, build,
                           str(device))
    parallel = Parallel("process", workers, threads=1) if workers > 1 else Parallel()
    start = time.perf_counter()
    first = None
    with ScoreRunner(recipe.open(), None, parallel) as runner:
        for _ in runner.scores(texts):
            if first is None:
                first = time.perf_counter()
    end = time.perf_counter()
    steady = (len(texts) - 1) / (end - first) if len(texts) > 1 and end > first else float("nan")
    return {"archs": len(texts), "wall_s": end - start, "rate": len(texts) / (end - start), "steady": steady}


def train_rate(space_name: str, arch_text: str, protocol_name: str, splits: DatasetSplits, device: torch.device,
               images: int, epochs: int, tiny: bool) -> dict:
    """Images per second of :func:`train` (its amp setting) on ``images`` training images."""
    space = get_space(space_name)
    protocol = get_protocol(protocol_name, epochs=epochs, max_train=min(images, len(splits.train)))
    network = dict(protocol.network)
    if tiny:
        network = {"C": 4, "N": 1} if space_name == "nb201" else {**network, "C": 4, "layers": 5}
    net = build_network(space, space.decode(arch_text), splits, 0, network)
    result = train(net, splits, protocol, device=device, seed=0, progress=False)
    seen = protocol.epochs * protocol.max_train
    return {"images": seen, "seconds": result.seconds, "rate": seen / result.seconds, "params": result.params,
            "amp": protocol.amp and device.type == "cuda", "network": network}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--cells", type=int, default=500, help="NB201 cells scored per worker count")
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 4, 8], help="process counts tried besides 1")
    parser.add_argument("--batch-size", type=int, default=64, help="KCC scoring batch")
    parser.add_argument("--ntk-cells", type=int, default=5)
    parser.add_argument("--ntk-batch", type=int, default=64)
    parser.add_argument("--sweep-sizes", type=int, nargs="*", default=list(SWEEP_SIZES),
                        help="batch sizes of the NTK sweep (none: skip it)")
    parser.add_argument("--train-images", type=int, default=10_000)
    parser.add_argument("--train-epochs", type=int, default=2)
    parser.add_argument("--tiny", action="store_true", help="tiny networks (smoke run)")
    parser.add_argument("--no-pytest", action="store_true")
    parser.add_argument("--pytest-timeout", type=int, default=180)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "gpu")
    return parser.parse_args(argv)


def ntk_section(args: argparse.Namespace, splits: DatasetSplits, device: torch.device, build: dict,
                sections: dict[str, float]) -> list[str]:
    """The NTK on the device against the CPU reference (its seconds recorded in ``sections``)."""
    start = time.perf_counter()
    agree = ntk_agreement(splits, device, args.ntk_cells, args.ntk_batch, build)
    sections["NTK agreement"] = time.perf_counter() - start
    return ["## The NTK on the device vs the CPU reference", "",
            f"{args.ntk_cells} NB201 cells, batch {args.ntk_batch}; Theta by the default (fast) path on {device} "
            "vs `method='reference'` (vmap(jacrev)) on the CPU; max |A - B| / max |B|:", "",
            "| precision | max relative difference of Theta |", "|---|---|",
            f"| float64 | {agree['float64']:.1e} |", f"| float32 | {agree['float32']:.1e} |", "",
            f"Largest |KCC difference| in float32: {agree['kcc']:.1e}. Median seconds per NTK on {device} "
            f"(float32): fast {agree['fast_s']:.4f}, reference {agree['reference_s']:.4f}.", ""]


def kcc_section(args: argparse.Namespace, dataset: str, device: torch.device, build: dict,
                sections: dict[str, float]) -> list[str]:
    """KCC scoring rates with 1 and ``args.workers`` processes (their seconds recorded in ``sections``)."""
    rows = []
    for workers in [1, *[w for w in args.workers if w > 1]]:
        start = time.perf_counter()
        rows.append((workers, kcc_rate(dataset, device, args.cells, workers, build, args.batch_size)))
        sections[f"KCC, {workers} process(es)"] = time.perf_counter() - start
    best = max(rows, key=lambda row: row[1]["steady"] if row[1]["steady"] == row[1]["steady"] else row[1]["rate"])
    best_rate = best[1]["steady"] if best[1]["steady"] == best[1]["steady"] else best[1]["rate"]
    return ["## KCC scoring rate", "",
            f"Sampled NB201 cells (seed 0), one KCC score each (batch {args.batch_size}, default NTK), through "
            "`ScoreRunner` (no store); k > 1 are worker processes sharing the device, one CPU thread each.", "",
            "| processes | architectures | wall s (start-up included) | archs/s overall | archs/s after the first |",
            "|---|---|---|---|---|",
            *(f"| {w} | {r['archs']} | {r['wall_s']:.1f} | {r['rate']:.1f} | {r['steady']:.1f} |" for w, r in rows), "",
            f"Best: {best[0]} process(es), {best_rate:.1f} architectures/s: all {NUM_ARCHS:,} cells in about "
            f"{NUM_ARCHS / best_rate / 60:.1f} minutes (target: <= 10 minutes, >= 26 per s).", ""]


def sweep_section(args: argparse.Namespace, splits: DatasetSplits, device: torch.device, build: dict,
                  sections: dict[str, float]) -> list[str]:
    """One Theta against the batch size (its seconds recorded in ``sections``); none without sizes."""
    if not args.sweep_sizes:
        return []
    start = time.perf_counter()
    sweep = []
    for name, text in (("largest", LARGEST), ("median", median_cell(splits, build))):
        for output in ("sum", "centred"):
            for m in args.sweep_sizes:
                seconds, peak = sweep_point(text, m, output, str(device), torch.get_num_threads(), splits=splits,
                                            build=build)
                sweep.append(f"| {name} | {output} | {m} | {seconds:.3f} | "
                             f"{'n/a' if peak is None else f'{peak:.0f}'} |")
    sections["NTK vs batch size"] = time.perf_counter() - start
    return ["## The NTK against the batch size", "",
            f"One default (fast) Theta on {device} of the largest NB201 cell and the median one by parameter count "
            "(200 cells, seed 0), batch of m (data seed 0); peak: `torch.cuda.max_memory_allocated` during the "
            "call (n/a on the CPU; `kcc_speed.py --sweep` measures CPU memory).", "",
            "| cell | output | m | seconds | peak device MiB |", "|---|---|---|---|---|", *sweep, ""]


def train_section(args: argparse.Namespace, splits: DatasetSplits, device: torch.device,
                  sections: dict[str, float]) -> list[str]:
    """Training throughput of an NB201 cell and DARTS_V2 (their seconds recorded in ``sections``)."""
    trains = []
    for space_name, arch, protocol in (("nb201", NB201_CELL, "nb201"), ("darts", DARTS_V2, "darts")):
        start = time.perf_counter()
        trains.append((space_name, protocol, train_rate(space_name, arch, protocol, splits, device,
                                                        args.train_images, args.train_epochs, args.tiny)))
        sections[f"training {space_name}"] = time.perf_counter() - start
    return ["## Training throughput", "",
            f"`searchkit.train.trainer.train`, {args.train_epochs} epochs of up to {args.train_images} images "
            "(augmentation, optimiser step and loss scaling included; first epoch's warm-up included).", "",
            "| network | protocol | parameters | float16 autocast | images | seconds | images/s |", "|---|---|---|---|---|---|---|",
            *(f"| {s} {r['network'] or ''} | {p} | {r['params']:,} | {r['amp']} | {r['images']} | {r['seconds']:.1f} | "
              f"{r['rate']:.0f} |" for s, p, r in trains), ""]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but CUDA is not available; use --device cpu for a smoke run")
    build = {"C": 4, "N": 1} if args.tiny else {}
    dataset, splits, note = load_data(args.dataset)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"
    lines = ["# GPU check", "", f"Command: `python benchmarks/gpu_check.py {' '.join(argv or sys.argv[1:])}`", "",
             f"Device: {device} ({name}); torch {torch.__version__}, CUDA {torch.version.cuda}; "
             f"cuDNN TF32 {torch.backends.cudnn.allow_tf32 if device.type == 'cuda' else 'n/a'}; "
             f"dataset {dataset}; NB201 build {build or 'C=16, N=5'}.", ""]
    if note:
        lines += [f"Note: {note}", ""]
    sections: dict[str, float] = {}
    if not args.no_pytest:
        summary, sections["pytest -m cuda"] = run_pytest(args.pytest_timeout)
        lines += ["## CUDA-marked tests", "", f"`pytest -m cuda`: {summary}", ""]
    lines += ntk_section(args, splits, device, build, sections)
    lines += kcc_section(args, dataset, device, build, sections)
    lines += sweep_section(args, splits, device, build, sections)
    lines += train_section(args, splits, device, sections)
    lines += ["## Seconds per section", "", *(f"- {k}: {v:.1f}" for k, v in sections.items())]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "README.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0

if __name__ == "__main__":
    sys.exit(main())
