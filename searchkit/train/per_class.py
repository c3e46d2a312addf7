"""Per-class honesty beside the accuracy: the confusion matrix, balanced accuracy, a per-class table
and the confusion-matrix plot of a trained network's evaluation (issue 29).

One accuracy hides a class the network never predicts; balanced accuracy (the mean of the per-class
recalls, Brodersen et al. 2010) does not: on a 200/40/10 folder, predicting the two large classes
perfectly and the small one never gives 96 % accuracy but 66.7 % balanced accuracy.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

CONFUSION_PNG = "confusion.png"


def confusion_matrix(target: torch.Tensor, predicted: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts ``C[i, j]`` of examples of class i predicted as class j: (num_classes, num_classes) int64.

    ``target``, ``predicted``: (N,) int64 class indices in [0, num_classes).
    """
    flat = target.long() * num_classes + predicted.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def class_report(confusion: np.ndarray | list, names: list[str] | None = None) -> dict:
    """Balanced accuracy and the per-class table of a confusion matrix (rows: true class).

    ``balanced_accuracy`` (%): the mean recall over the classes with examples; per class: ``support``
    (examples), ``recall`` (% of them predicted right: the class's accuracy), ``predicted`` (examples
    predicted as the class) and ``precision`` (% of those right; None when it is never predicted).
    """
    counts = np.asarray(confusion, dtype=np.int64)
    support, predicted, right = counts.sum(1), counts.sum(0), np.diag(counts)
    names = names if names is not None else [str(k) for k in range(len(counts))]
    recall = np.divide(100.0 * right, support, out=np.full(len(counts), np.nan), where=support > 0)
    rows = [{"class": str(name), "support": int(n), "recall": None if n == 0 else round(float(r), 2),
             "predicted": int(p), "precision": None if p == 0 else round(100.0 * float(c) / float(p), 2)}
            for name, n, r, p, c in zip(names, support, recall, predicted, right)]
    return {"balanced_accuracy": round(float(np.nanmean(recall)), 2), "per_class": rows,
            "confusion": counts.tolist()}


def describe_classes(report: dict, split: str = "test", worst: int = 3) -> str:
    """One line: balanced accuracy and the classes with the lowest recall, e.g. ``balanced test accuracy
    66.67% over 3 classes; lowest recall: c 0.00% (10 images, predicted 0 times), ...``."""
    rows = sorted((row for row in report["per_class"] if row["recall"] is not None), key=lambda row: row["recall"])
    low = ", ".join(f"{row['class']} {row['recall']:.2f}% ({row['support']} images, predicted {row['predicted']} "
                    f"times)" for row in rows[:worst])
    return (f"balanced {split} accuracy {report['balanced_accuracy']:.2f}% over {len(report['per_class'])} classes; "
            f"lowest recall: {low}")


def plot_confusion(report: dict, path: str | Path, title: str) -> Path:
    """The confusion matrix as a heat map (rows normalised to recall, counts written in each cell)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.asarray(report["confusion"])
    names = [row["class"] for row in report["per_class"]]
    share = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    size = 2.5 + 0.45 * len(names)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    if len(names) <= 20:
        for i, j in np.ndindex(counts.shape):
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if share[i, j] > 0.5 else "black")
    ticks = np.arange(len(names))
    ax.set_xticks(ticks, names, rotation=90 if len(names) > 10 else 0, fontsize=7)
    ax.set_yticks(ticks, [f"{name} ({row['support']})" for name, row in zip(names, report["per_class"])], fontsize=7)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class (images)")
    ax.set_title(f"{title}\nbalanced accuracy {report['balanced_accuracy']:.2f}%", fontsize=9)
    fig.colorbar(image, ax=ax, label="share of the true class (recall on the diagonal)")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
