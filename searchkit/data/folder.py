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


@DATASETS.register("imagefolder")
def imagefolder(
    root: str | Path | None = None, image_size: int | Sequence[int] | None = None
) -> DatasetSplits:
    """Images in ``root/<split>/<class>/``; classes are train/'s folders sorted by name.

    ``image_size`` (an int or (H, W)) resizes every image; without it all images must share
    one size (checked on the statistics sample up front, and on every image as it is decoded).
    Channels: 1 if the sampled images are all greyscale, else 3 (RGB). mean/std come from a
    seeded sample of up to 1000 training images. Images are decoded on demand.
    """
    if root is None:
        raise SearchkitError(f"dataset 'imagefolder' needs data.root: a directory with {LAYOUT}")
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
        info={"mean": tuple(mean), "std": tuple(std), "classes": classes, "root": str(root)},
    )


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
