"""Small training sets: which batch size and learning rate should the NB201 protocol fall back to?

    flock /tmp/searchkit-cpu.lock python benchmarks/small_data_lr.py --out results/small-data

Issue 18's case: a user's folder of 300 32x32 PNGs in 3 classes (240 train, 60 test) trained with
the NB201 protocol for 5 epochs: batch 256 > 240 images, so 5 epochs are 5 SGD steps. This script
builds such a folder from 100 CIFAR-10 training images of each of 3 classes (airplane, automobile,
frog; 80 train / 20 test per class, drawn with seed 0 from the shared tarball; written as PNG to a
temporary directory) and a synthetic one that is easy to learn (class = colour tint + noise, as in
tests/test_small_data_training.py), then trains two cells under the protocol's cosine schedule
for 5 epochs with:

* batch 256, lr 0.1: the protocol as it was (1 step per epoch);
* batch 16, lr 0.1: the batch of :func:`searchkit.train.trainer.plan_batches` (15 steps per
  epoch), lr kept;
* batch 16, lr 0.025: the square-root scaling rule (lr * sqrt(16 / 256)), what plan_batches does;
* batch 16, lr 0.00625: the linear scaling rule (lr * 16 / 256, Goyal et al. 2017).

Each (data, cell, setting) runs for 3 seeds (network initialisation and shuffling). Results go to
``OUT/README.md`` (mean and range of test accuracy, final training loss) and ``OUT/runs.json``.
Rerunning skips the runs already in runs.json.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from searchkit.data import get_dataset
from searchkit.spaces import get_space
from searchkit.train import get_protocol, train

CELLS = {
    "identity (issue 18's demo pick)": "|none~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|skip_connect~0|none~1|none~2|",
    "best NB201 cell": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
}
SETTINGS = {  # label -> (batch size, learning rate)
    "b256 lr0.1 (protocol)": (256, 0.1),
    "b16 lr0.1 (kept lr)": (16, 0.1),
    "b16 lr0.025 (sqrt rule)": (16, 0.025),
    "b16 lr0.00625 (linear rule)": (16, 0.00625),
}
CIFAR_CLASSES = (0, 1, 6)  # airplane, automobile, frog
SEEDS = (0, 1, 2)
EPOCHS = 5


def write_cifar3(root: Path) -> None:
    """100 seeded CIFAR-10 training images of each of CIFAR_CLASSES as PNGs: 80 train, 20 test."""
    cifar = get_dataset("cifar10")
    labels = cifar.train.labels
    rng = np.random.default_rng(0)
    for c in CIFAR_CLASSES:
        chosen = np.sort(rng.choice(np.flatnonzero(labels == c), size=100, replace=False))
        x, _ = cifar.train.batch(chosen)
        pixels = ((x * cifar.train.std + cifar.train.mean).clamp(0, 1) * 255).round().to(torch.uint8)
        for k, image in enumerate(pixels.permute(0, 2, 3, 1).numpy()):
            split = "train" if k < 80 else "test"
            (root / split / f"c{c}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(root / split / f"c{c}" / f"{k:03d}.png")


def write_tints(root: Path, n_train: int = 80, n_test: int = 20, size: int = 32, seed: int = 0) -> None:
    """3 classes of noise images, each with its own colour tint (easy: a linear probe separates them)."""
    rng = np.random.default_rng(seed)
    tints = np.array([[60, 0, 0], [0, 60, 0], [0, 0, 60]])
    for c, tint in enumerate(tints):
        for split, n in (("train", n_train), ("test", n_test)):
            (root / split / f"class{c}").mkdir(parents=True, exist_ok=True)
            for k in range(n):
                image = np.clip(rng.normal(100, 40, (size, size, 3)) + tint, 0, 255).astype(np.uint8)
                Image.fromarray(image).save(root / split / f"class{c}" / f"{k:03d}.png")


def run_one(splits, cell: str, batch: int, lr: float, seed: int) -> dict:
    space = get_space("nb201")
    torch.manual_seed(seed)
    net = space.build(space.decode(cell), splits.num_classes, in_channels=splits.input_shape[0])
    protocol = get_protocol("nb201", epochs=EPOCHS, batch_size=batch, lr=lr, min_steps_per_epoch=0)
    start = time.perf_counter()
    result = train(net, splits, protocol, device="cpu", seed=seed, progress=False)
    return {"test_acc": result.test_acc, "train_loss": result.train_loss, "steps": result.steps,
            "seconds": round(time.perf_counter() - start, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/small-data")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs_path = out / "runs.json"
    runs = json.loads(runs_path.read_text()) if runs_path.exists() else {}
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        datasets = {}
        for name, writer in (("CIFAR-10, 3 classes", write_cifar3), ("colour tints", write_tints)):
            root = Path(tmp) / name.replace(" ", "_").replace(",", "")
            writer(root)
            datasets[name] = get_dataset("imagefolder", root=root, valid_fraction=0)
        for data_name, splits in datasets.items():
            for cell_name, cell in CELLS.items():
                for label, (batch, lr) in SETTINGS.items():
                    for seed in SEEDS:
                        key = f"{data_name} | {cell_name} | {label} | seed {seed}"
                        if key in runs:
                            continue
                        runs[key] = run_one(splits, cell, batch, lr, seed)
                        print(key, runs[key], flush=True)
                        runs_path.write_text(json.dumps(runs, indent=1) + "\n")
    write_readme(out, runs, argv if argv is not None else sys.argv[1:])
    return 0


def write_readme(out: Path, runs: dict, argv: list[str]) -> None:
    lines = [
        "# Small training sets: batch size and learning rate", "",
        f"Command: `python benchmarks/small_data_lr.py {shlex.join(argv)}` (under the CPU lock, "
        "2 threads). 240 training / 60 test images, 3 classes, NB201 network (C=16, N=5), NB201 "
        f"protocol (SGD nesterov, momentum 0.9, wd 5e-4, cosine), {EPOCHS} epochs, seeds "
        f"{', '.join(map(str, SEEDS))}. Test accuracy in % (chance 33.3): mean [min, max] over "
        "seeds; training loss of the last epoch, mean; steps = optimiser steps in all.", "",
        "| data | cell | setting | steps | test accuracy % | train loss |",
        "|---|---|---|---|---|---|",
    ]
    for data_name in ("CIFAR-10, 3 classes", "colour tints"):
        for cell_name in CELLS:
            for label in SETTINGS:
                rows = [runs[k] for k in runs if k.startswith(f"{data_name} | {cell_name} | {label} |")]
                if not rows:
                    continue
                acc = np.array([r["test_acc"] for r in rows])
                loss = np.mean([r["train_loss"] for r in rows])
                lines.append(f"| {data_name} | {cell_name} | {label} | {rows[0]['steps']} | "
                             f"{acc.mean():.1f} [{acc.min():.1f}, {acc.max():.1f}] | {loss:.3f} |")
    lines += ["", "Rerunning the command skips the runs already in runs.json. What the trainer took from this: "
              "`searchkit.train.trainer.plan_batches` falls back to batch 16 with the square-root rule "
              "(lr 0.025) for 240 images; its docstring gives the reasons."]
    (out / "README.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
