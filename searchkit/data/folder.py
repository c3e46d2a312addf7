"""``imagefolder``: a user's own images, ``root/{train,test}[/valid]/<class>/*.{jpg,jpeg,png}``."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from searchkit.data.base import DatasetSplits
from searchkit.data.catalog import DATASETS
from searchkit.data.imageset import ImageSet, channel_stats
from searchkit.data.sources import GRAY_MODES, DirTree, TreeDecoder
from searchkit.errors import SearchkitError

LAYOUT = "{train,test}[/valid]/<class>/*.jpg|jpeg|png"
STATS_SAMPLE = 1000
VALID_FRACTION = 0.1
VALID_MIN_PER_CLASS = 5


@DATASETS.register("imagefolder")
def imagefolder(
    root: str | Path | None = None,
    image_size: int | Sequence[int] | None = None,
    valid_fraction: float = VALID_FRACTION,
    valid_min_per_class: int = VALID_MIN_PER_CLASS,
    valid_seed: int = 0,
) -> DatasetSplits:
    """Images in ``root/<split>/<class>/``; classes are train/'s folders sorted by name.

    ``image_size`` (an int or (H, W)) resizes every image; without it all images must share
    one size (checked on the statistics sample up front, and on every image as it is decoded).
    Channels: 1 if the sampled images are all greyscale, else 3 (RGB). mean/std come from a
    seeded sample of up to 1000 training images (after any validation images are carved out).
    Images are decoded on demand.

    Validation split: ``root/valid/`` when it exists. Otherwise one is carved from train/
    (:func:`carve_validation`: per class ``max(round(valid_fraction * n), valid_min_per_class)``
    images, at most half the class, drawn with ``valid_seed``) and removed from the training
    split; ``valid_fraction=0`` carves nothing (``valid`` is then None). ``info["valid_split"]``
    records where the split came from, and :meth:`DatasetSplits.describe_valid` says it in a line.
    """
    if root is None:
        raise SearchkitError(f"dataset 'imagefolder' needs data.root: a directory with {LAYOUT}")
    _check_valid_options(valid_fraction, valid_min_per_class, valid_seed)
    resize_to = None if image_size is None else _parse_size(image_size)
    root = Path(root).expanduser()
    if not root.is_dir():
        raise SearchkitError(f"image folder not found at {root}: expected {LAYOUT}; set data.root")
    tree = DirTree(root)
    for split in ("train", "test"):
        if split not in tree.files:
            raise SearchkitError(
                f"image folder {root} has no {split}/ directory; expected {LAYOUT}"
            )
    classes = sorted(tree.files["train"])
    if not classes:
        raise SearchkitError(
            f"image folder {root / 'train'} has no class folders; expected {LAYOUT}"
        )
    for split, by_class in tree.files.items():
        if not by_class:
            raise SearchkitError(
                f"image folder {root / split} is empty: expected <class>/ folders of images"
            )
        extra = sorted(set(by_class) - set(classes))
        if extra:
            raise SearchkitError(
                f"image folder {root / split} has class folder(s) {', '.join(extra)} that "
                f"train/ lacks; every class must have training images"
            )
        empty = [c for c in sorted(by_class) if not by_class[c]]
        if empty:
            raise SearchkitError(
                f"image folder {root / split / empty[0]} is empty: expected .jpg, .jpeg or "
                ".png images"
            )
    rels = {
        split: [
            (f"{split}/{c}/{name}", label)
            for label, c in enumerate(classes)
            for name in tree.files[split].get(c, [])
        ]
        for split in tree.files
    }
    n_train = len(rels["train"])
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(n_train, size=min(STATS_SAMPLE, n_train), replace=False))
    modes, sizes = set(), set()
    for i in sample:
        mode, size = _probe(tree, rels["train"][i][0])
        modes.add(mode)
        sizes.add(size)
    mode = "L" if modes <= GRAY_MODES else "RGB"
    if resize_to is None:
        if len(sizes) > 1:
            shown = ", ".join(f"{w}x{h}" for w, h in sorted(sizes)[:3])
            raise SearchkitError(
                f"images in {root / 'train'} have different sizes ({shown}); set the "
                "image_size option to resize them to one size"
            )
        w, h = sizes.pop()
        size, hint = (h, w), "; set the image_size option to resize all images to one size"
    else:
        size, hint = resize_to, ""

    sample, valid_split = _valid_split(rels, root, classes, sample, valid_fraction, valid_min_per_class,
                                       valid_seed)

    def decoder(split: str) -> TreeDecoder:
        paths = [rel for rel, _ in rels[split]]
        return TreeDecoder(tree, paths, mode, size, resize=resize_to is not None, hint=hint)

    train_decode = decoder("train")
    mean, std = channel_stats(torch.from_numpy(np.stack([train_decode(int(i)) for i in sample])))
    sets = {
        split: ImageSet([label for _, label in rels[split]], mean, std, decode=decoder(split))
        for split in rels
    }
    return DatasetSplits(
        name="imagefolder",
        num_classes=len(classes),
        input_shape=(1 if mode == "L" else 3, *size),
        train=sets["train"],
        valid=sets.get("valid"),
        test=sets["test"],
        augment=True,
        info={"mean": tuple(mean), "std": tuple(std), "classes": classes, "root": str(root),
              "valid_split": valid_split},
    )


def _valid_split(
    rels: dict[str, list[tuple[str, int]]], root: Path, classes: list[str], sample: np.ndarray,
    fraction: float, min_per_class: int, seed: int,
) -> tuple[np.ndarray, dict]:
    """Carve ``rels["valid"]`` out of ``rels["train"]`` (in place) unless valid/ exists or
    ``fraction`` is 0. Returns the statistics ``sample`` re-indexed into the training images left
    and the record stored as ``info["valid_split"]``."""
    if "valid" in rels:
        return sample, {"source": "folder", "images": len(rels["valid"]), "path": str(root / "valid")}
    if fraction == 0:
        return sample, {"source": "none"}
    labels = np.array([label for _, label in rels["train"]])
    keep, carved = carve_validation(labels, fraction, min_per_class, seed, classes)
    rels["valid"] = [rels["train"][i] for i in carved]
    rels["train"] = [rels["train"][i] for i in keep]
    record = {
        "source": "carved", "images": len(carved), "train_images": len(keep),
        "per_class": np.bincount(labels[carved], minlength=len(classes)).tolist(),
        "fraction": fraction, "min_per_class": min_per_class, "seed": seed,
    }
    return np.flatnonzero(np.isin(keep, sample)), record


def carve_validation(
    labels: np.ndarray, fraction: float, min_per_class: int, seed: int, classes: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """A stratified, seeded validation split of training examples with class ``labels: (N,)``.

    Class c with n_c examples gives ``k_c = min(max(round(fraction * n_c), min_per_class),
    n_c // 2)`` of them (``round``: ties to even), drawn without replacement by
    ``np.random.default_rng([seed, c])``, a stream per class, so that adding images to one class
    leaves the others' draws unchanged.
    Returns (kept, carved): sorted index arrays that partition 0..N-1. A class with fewer than 2
    examples cannot give one; that is a SearchkitError naming the fixes.

    Why these sizes: 10 % is the usual hold-out share and costs the final training little data;
    the floor of 5 per class keeps a small folder's validation accuracy from resting on one or two
    images per class (with 3 classes: steps of 1/15 rather than 1/3); the cap of half the class
    keeps most images for training.
    """
    kept, carved = [], []
    for c in range(len(classes)):
        members = np.flatnonzero(labels == c)
        n = len(members)
        if n < 2:
            raise SearchkitError(
                f"class {classes[c]!r} has {n} training image(s): carving a validation split needs "
                "at least 2 per class; add images, add root/valid/<class>/ folders, or set the "
                "dataset option valid_fraction=0"
            )
        k = min(max(round(fraction * n), min_per_class), n // 2)
        chosen = np.random.default_rng([seed, c]).permutation(n)
        carved.append(members[chosen[:k]])
        kept.append(members[chosen[k:]])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(carved))


def _check_valid_options(fraction: float, min_per_class: int, seed: int) -> None:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 0.5:
        raise SearchkitError(
            f"valid_fraction must be a number in [0, 0.5] (the share of each class carved from "
            f"train/ when there is no valid/; 0 carves none), got {fraction!r}"
        )
    if isinstance(min_per_class, bool) or not isinstance(min_per_class, int) or min_per_class < 1:
        raise SearchkitError(f"valid_min_per_class must be a positive integer, got {min_per_class!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SearchkitError(f"valid_seed must be a non-negative integer, got {seed!r}")


def _probe(tree: DirTree, rel: str) -> tuple[str, tuple[int, int]]:
    """(mode, (W, H)) of one image from its header, without decoding the pixels."""
    try:
        with Image.open(tree.open(rel)) as im:
            return im.mode, im.size
    except (OSError, SyntaxError, ValueError) as err:
        raise SearchkitError(f"cannot read image {tree.where(rel)}: {err}") from err


def _parse_size(image_size: int | Sequence[int]) -> tuple[int, int]:
    """``image_size`` as (H, W): an int means square."""
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise SearchkitError(
            f"image_size must be a positive int or (height, width), got {image_size!r}"
        )
    return size
