"""Types shared by every dataset: the scoring batch and a dataset's splits."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.utils.data import Dataset


@dataclass
class Batch:
    """A scoring batch for training-free metrics.

    x: (m, C, H, W) float32, normalised with the dataset's mean/std.
    y: (m,) int64 class labels in [0, num_classes).
    """

    x: torch.Tensor
    y: torch.Tensor
    num_classes: int

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(self.x.to(device), self.y.to(device), self.num_classes)

    def fingerprint(self) -> str:
        """A short stable hash of the batch contents (for caches and provenance)."""
        import hashlib

        h = hashlib.sha1()
        h.update(self.x.detach().cpu().contiguous().numpy().tobytes())
        h.update(self.y.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:12]


@dataclass
class DatasetSplits:
    """A dataset's splits as map-style datasets yielding ``(x (C,H,W) float32 normalised, y int)``.

    ``valid`` is None where the dataset has no validation split. ``input_shape`` is (C, H, W).
    ``augment`` says whether the benchmark's crop+flip augmentation suits the training split
    (true for natural images, false for tiny inputs like 8x8 digits).
    """

    name: str
    num_classes: int
    input_shape: tuple[int, int, int]
    train: Dataset
    test: Dataset
    valid: Dataset | None = None
    augment: bool = True
    info: dict = field(default_factory=dict)

    def describe(self) -> dict:
        """What a network trained on these splits expects of its inputs, for run records
        (``best.json``, ``evaluation.json``) and exported models: ``name``, ``classes`` (label i is
        ``classes[i]``; None where unnamed), ``input_shape`` (C, H, W) and the per-channel ``mean``
        / ``std`` of pixels scaled to [0, 1] (an input is ``(pixel / 255 - mean) / std``), plus
        what the factory recorded of ``image_size_rule``, ``class_counts`` and ``skipped``."""
        extra = {k: self.info[k] for k in ("image_size_rule", "class_counts", "skipped") if k in self.info}
        mean, std = self.info.get("mean"), self.info.get("std")
        return {"name": self.name, "classes": self.info.get("classes"), "input_shape": list(self.input_shape),
                "mean": None if mean is None else list(mean), "std": None if std is None else list(std), **extra}

    def describe_valid(self) -> str:
        """One line on the validation split and where it came from, for run logs and reports.

        Uses ``info["valid_split"]`` where the factory recorded it (``source``: ``folder``,
        ``carved`` with ``images``, ``per_class``, ``fraction``, ``min_per_class``, ``max_share``, ``seed``, or
        ``none``); otherwise the split's size.
        """
        record = self.info.get("valid_split", {})
        if record.get("source") == "carved":
            per_class = "/".join(str(k) for k in record["per_class"])
            share = f", valid_max_share={record['max_share']}" if "max_share" in record else ""
            return (
                f"validation split: {record['images']} images carved from train/ (stratified, "
                f"{per_class} per class, valid_fraction={record['fraction']}, "
                f"valid_min_per_class={record['min_per_class']}{share}, valid_seed={record['seed']}); "
                f"training keeps {record['train_images']} images"
            )
        if self.valid is None:
            return f"validation split: none ({self.name} has no valid split)"
        where = f" from {record['path']}" if record.get("source") == "folder" else ""
        return f"validation split: {len(self.valid)} images{where}"
