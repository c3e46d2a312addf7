"""``imagefolder``: a user's own images, ``root/{train,test}[/valid]/[<group>/]<class>/<image>``.

Images as people have them: JPEG, PNG (also BMP, GIF, TIFF, WebP), grayscale, RGB or with
transparency, of mixed sizes, classes one level deep or grouped. Every image of every split is
checked (headers, then a full decode) before any work, every problem reported at once; the
decoded images are cached (:mod:`searchkit.data.decoding`), so a second load reads one file.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from searchkit.data.base import DatasetSplits
from searchkit.data.catalog import DATASETS
from searchkit.data.decoding import DecodedFolder, decode_all, folder_key, probe_all, worker_count
from searchkit.data.imageset import ImageSet, channel_stats
from searchkit.data.problems import report_problems
from searchkit.data.sources import GRAY_MODES, SPLITS, DirTree
from searchkit.errors import SearchkitError

LAYOUT = "{train,test}[/valid]/<class>/*.jpg|png (or <group>/<class>/)"
VALID_FRACTION = 0.1
VALID_MIN_PER_CLASS = 5
VALID_MAX_SHARE = 0.2
#: the largest side the default rule picks for images of mixed sizes, and the training images it looks at
MAX_DEFAULT_SIDE = 64
SIZE_SAMPLE = 1000
#: largest / smallest training class at which a warning says the classes are imbalanced
IMBALANCE_RATIO = 3.0


class ImbalancedClassesWarning(UserWarning):
    """The training classes of an image folder differ in size by :data:`IMBALANCE_RATIO` or more."""


class InputSizeWarning(UserWarning):
    """Images of mixed sizes are resized to a size the default rule chose."""


@DATASETS.register("imagefolder")
def imagefolder(
    root: str | Path | None = None,
    image_size: int | Sequence[int] | None = None,
    valid_fraction: float = VALID_FRACTION,
    valid_min_per_class: int = VALID_MIN_PER_CLASS,
    valid_max_share: float = VALID_MAX_SHARE,
    valid_seed: int = 0,
    skip_bad: bool = False,
    cache: bool = True,
    decode_workers: int | None = None,
) -> DatasetSplits:
    """Images in ``root/<split>/<class>/`` or ``root/<split>/<group>/<class>/`` (class
    ``"<group>/<class>"``, see :class:`~searchkit.data.sources.DirTree`); classes are train/'s,
    sorted by name.

    Checks, all before any work: every file of every split is listed and every image decoded
    (each file opened once); all problems (a corrupt or truncated image, a non-image
    file, an empty class folder, a misplaced folder) are reported in one SearchkitError, or with
    ``skip_bad`` left out and counted in one warning (``info["skipped"]``).

    Input format: channels 1 if every image is grayscale, else 3 (RGB; transparency composited
    over black). ``image_size`` (an int or (H, W)) sets the input size; without it, the size of
    the training images when they share one, else a square of their median shorter side, at
    most :data:`MAX_DEFAULT_SIDE` (an :class:`InputSizeWarning` says so); the training images
    looked at are a seeded sample of :data:`SIZE_SAMPLE` where there are more. Images of another size are
    scaled to cover it and centre-cropped. ``info["image_size_rule"]`` says which rule applied.
    mean/std are per channel over every pixel of the training split (after any validation images
    are carved out) and recorded in ``info`` (and :meth:`DatasetSplits.describe`).

    Decoded pixels are cached (``cache=False``: not) and decoded by ``decode_workers`` processes
    (None: every core from 4,000 images on, see :func:`~searchkit.data.decoding.worker_count`).

    Validation split: ``root/valid/`` when it exists. Otherwise one is carved from train/
    (:func:`carve_validation` with ``valid_fraction``, ``valid_min_per_class``,
    ``valid_max_share``, ``valid_seed``) and removed from the training split; ``valid_fraction=0``
    carves nothing (``valid`` is then None). ``info["valid_split"]`` records where the split came
    from, and :meth:`DatasetSplits.describe_valid` says it in a line. Classes whose largest is
    :data:`IMBALANCE_RATIO` times the smallest or more give an :class:`ImbalancedClassesWarning`.
    """
    if root is None:
        raise SearchkitError(f"dataset 'imagefolder' needs data.root: a directory with {LAYOUT}")
    _check_options(valid_fraction, valid_min_per_class, valid_max_share, valid_seed, skip_bad, cache, decode_workers)
    resize_to = None if image_size is None else _parse_size(image_size)
    root = Path(root).expanduser()
    tree = _listed(root)
    decoded = _decode(tree, resize_to, skip_bad, cache, decode_workers)
    if decoded.size_chosen:
        warnings.warn(f"images in {root} have mixed sizes; each is scaled and centre-cropped to {decoded.size_rule}",
                      InputSizeWarning, stacklevel=2)
    rows = _rows_by_split(decoded.rows)
    classes = _classes(root, rows)
    label_of = {c: i for i, c in enumerate(classes)}
    labels = {split: np.array([label_of[cls] for cls, _ in items]) for split, items in rows.items()}
    pixels = {split: torch.from_numpy(decoded.pixels[start:start + len(rows[split])])
              for split, start in _starts(rows).items()}
    counts = np.bincount(labels["train"], minlength=len(classes))
    _warn_if_imbalanced(root, classes, counts)
    keep, carved, valid_split = _valid_split(labels, root, classes, valid_fraction, valid_min_per_class,
                                             valid_max_share, valid_seed)
    mean, std = channel_stats(pixels["train"], rows=keep)
    sets = {split: ImageSet(labels[split], mean, std, pixels=pixels[split]) for split in rows}
    if carved is not None:
        sets["train"], sets["valid"] = sets["train"].subset(keep), sets["train"].subset(carved)
    h, w = decoded.size
    return DatasetSplits(
        name="imagefolder",
        num_classes=len(classes),
        input_shape=(1 if decoded.mode == "L" else 3, h, w),
        train=sets["train"],
        valid=sets.get("valid"),
        test=sets["test"],
        augment=True,
        info={"mean": tuple(mean), "std": tuple(std), "classes": classes, "root": str(root),
              "valid_split": valid_split, "image_size": [h, w], "image_size_rule": decoded.size_rule,
              "class_counts": dict(zip(classes, counts.tolist())), "skipped": len(decoded.skipped),
              "decoded_from": decoded.source},
    )


def _listed(root: Path) -> DirTree:
    """Every file under ``root``; SearchkitError when it is no directory or lacks train/ or test/."""
    if not root.is_dir():
        raise SearchkitError(f"image folder not found at {root}: expected {LAYOUT}; set data.root")
    tree = DirTree(root)
    for split in ("train", "test"):
        if split not in tree.files:
            raise SearchkitError(f"image folder {root} has no {split}/ directory; expected {LAYOUT}")
    return tree


def _classes(root: Path, rows: dict[str, list[tuple[str, int]]]) -> list[str]:
    """The class names of train/, sorted; SearchkitError when a split is empty or has a class train/ lacks."""
    classes = sorted({cls for cls, _ in rows.get("train", [])})
    if not classes:
        raise SearchkitError(f"image folder {root / 'train'} has no class folders with images; expected {LAYOUT}")
    for split in rows.keys() | {"test"}:
        if not rows.get(split):
            raise SearchkitError(f"image folder {root / split} is empty: expected <class>/ folders of images")
        extra = sorted({cls for cls, _ in rows[split]} - set(classes))
        if extra:
            raise SearchkitError(
                f"image folder {root / split} has class folder(s) {', '.join(extra)} that "
                f"train/ lacks; every class must have training images"
            )
    return classes


def _decode(tree: DirTree, resize_to: tuple[int, int] | None, skip_bad: bool, cache: bool,
            workers: int | None) -> DecodedFolder:
    """Every image of ``tree`` checked and decoded (or read back from the cache), every problem
    reported at once (:func:`~searchkit.data.problems.report_problems`: raised, or skipped)."""
    root = tree.root
    folders = {split: sorted(by_class) for split, by_class in tree.files.items()}  # empty ones have no file stats
    key = folder_key(root, tree.stats, {"image_size": resize_to, "skip_bad": skip_bad, "folders": folders,
                                        "problems": sorted(tree.problems)})
    cached = DecodedFolder.load(key) if cache else None
    if cached is not None:
        report_problems(root, cached.skipped, skip_bad)
        return cached
    rels = [f"{split}/{cls}/{name}" for split in SPLITS if split in tree.files
            for cls in sorted(tree.files[split]) for name in tree.files[split][cls]]
    train = [rel for rel in rels if rel.startswith("train/")]
    sample = np.random.default_rng(0).choice(len(train), size=min(SIZE_SAMPLE, len(train)), replace=False)
    headers, unreadable = probe_all(root, [train[i] for i in np.sort(sample)])
    if not headers:
        report_problems(root, tree.problems + unreadable, skip_bad)
        raise SearchkitError(f"image folder {root / 'train'} has no readable images; expected {LAYOUT}")
    mode, size, rule, chosen = _input_format(list(headers.values()), len(sample) < len(train), resize_to)
    n_workers = worker_count(len(rels), workers)
    pixels, found, bad = decode_all(root, rels, mode, size, n_workers)
    if mode == "L" and any(h is not None and h[0] not in GRAY_MODES for h in found):  # the sample missed colour
        mode = "RGB"
        pixels, found, bad = decode_all(root, rels, mode, size, n_workers)
    problems = tree.problems + bad
    report_problems(root, problems, skip_bad)
    if bad:
        kept = np.array([h is not None for h in found])
        rels, pixels = [rel for rel, ok in zip(rels, kept) if ok], pixels[kept]
    decoded = DecodedFolder(rels, pixels, mode, size, rule, chosen, problems, source="files")
    if cache:
        decoded.save(key)
    return decoded


def _input_format(headers: list[tuple[str, tuple[int, int]]], sampled: bool,
                  resize_to: tuple[int, int] | None) -> tuple[str, tuple[int, int], str, bool]:
    """(mode, (H, W), the rule that chose the size, whether the default rule chose it for mixed
    sizes) from training images' ``headers`` ``(mode, (W, H))``, all of them or (``sampled``) a sample."""
    mode = "L" if {m for m, _ in headers} <= GRAY_MODES else "RGB"
    if resize_to is not None:
        return mode, resize_to, f"{resize_to[0]}x{resize_to[1]} (data.options.image_size)", False
    sizes = [s for _, s in headers]
    where = f" in a seeded sample of {len(sizes)}" if sampled else ""
    if len(set(sizes)) == 1:
        w, h = sizes[0]
        return mode, (h, w), f"{h}x{w} (the size of every training image{where})", False
    shorter = int(np.median([min(s) for s in sizes]))
    side = min(shorter, MAX_DEFAULT_SIDE)
    return mode, (side, side), (f"{side}x{side} (training images{where} of {len(set(sizes))} sizes: their median "
                                f"shorter side {shorter}, at most {MAX_DEFAULT_SIDE}; set data.options.image_size to "
                                "choose)"), True


def _rows_by_split(rows: list[str]) -> dict[str, list[tuple[str, int]]]:
    """``{split: [(class, row), ...]}`` from ``"<split>/<class>/<file>"`` rows (contiguous per split)."""
    by_split: dict[str, list[tuple[str, int]]] = {}
    for i, rel in enumerate(rows):
        split, rest = rel.split("/", 1)
        by_split.setdefault(split, []).append((rest.rsplit("/", 1)[0], i))
    return by_split


def _starts(rows: dict[str, list[tuple[str, int]]]) -> dict[str, int]:
    """The first row of each split."""
    return {split: items[0][1] for split, items in rows.items()}


def _warn_if_imbalanced(root: Path, classes: list[str], counts: np.ndarray) -> None:
    """An :class:`ImbalancedClassesWarning` when the largest training class has
    :data:`IMBALANCE_RATIO` times the images of the smallest, or more."""
    big, small = int(np.argmax(counts)), int(np.argmin(counts))
    ratio = counts[big] / counts[small]
    if ratio >= IMBALANCE_RATIO:
        warnings.warn(
            f"imbalanced classes in {root / 'train'}: the smallest, {classes[small]!r}, has {counts[small]} images, "
            f"the largest, {classes[big]!r}, {counts[big]} ({ratio:.1f}:1); accuracy alone favours the large classes: "
            f"add images to {classes[small]!r} or look at per-class accuracy", ImbalancedClassesWarning, stacklevel=3)


def _valid_split(
    labels: dict[str, np.ndarray], root: Path, classes: list[str], fraction: float, min_per_class: int,
    max_share: float, seed: int,
) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """Which training images stay (``keep``) and which are carved out as the validation split
    (``carved``; None where valid/ exists or ``fraction`` is 0), and the record stored as
    ``info["valid_split"]``. Warns about classes that give no validation image."""
    every = np.arange(len(labels["train"]))
    if "valid" in labels:
        return every, None, {"source": "folder", "images": len(labels["valid"]), "path": str(root / "valid")}
    if fraction == 0:
        return every, None, {"source": "none"}
    keep, carved = carve_validation(labels["train"], fraction, min_per_class, max_share, seed, classes)
    per_class = np.bincount(labels["train"][carved], minlength=len(classes))
    missing = [classes[c] for c in np.flatnonzero(per_class == 0)]
    if missing:
        warnings.warn(
            f"no validation images carved from class(es) {', '.join(map(repr, missing))} of {root / 'train'}: "
            f"fewer than {math.ceil(1 / max_share)} training images each (at most valid_max_share={max_share} of a "
            "class is carved); validation accuracy does not measure them: add images or root/valid/<class>/ folders",
            ImbalancedClassesWarning, stacklevel=3)
    record = {
        "source": "carved", "images": len(carved), "train_images": len(keep), "per_class": per_class.tolist(),
        "fraction": fraction, "min_per_class": min_per_class, "max_share": max_share, "seed": seed,
    }
    return keep, carved, record


def carve_validation(
    labels: np.ndarray, fraction: float, min_per_class: int, max_share: float, seed: int, classes: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """A stratified, seeded validation split of training examples with class ``labels: (N,)``.

    Class c with n_c examples gives ``k_c = min(max(round(fraction * n_c), min_per_class),
    floor(max_share * n_c))`` of them (``round``: ties to even), drawn without replacement by
    ``np.random.default_rng([seed, c])``, a stream per class, so that adding images to one class
    leaves the others' draws unchanged. No class ever gives more than ``max_share`` of its
    images; one with fewer than ``1 / max_share`` gives none.
    Returns (kept, carved): sorted index arrays that partition 0..N-1. A split that would be
    empty is a SearchkitError naming the fixes.

    Why these sizes: 10 % is the usual hold-out share and costs the final training little data;
    the floor of 5 per class keeps a small folder's validation accuracy from resting on one or two
    images per class (with 3 classes: steps of 1/15 rather than 1/3); the cap of a fifth of the
    class keeps a small class's training images (a class of 10 gives 2, not 5).
    """
    kept, carved = [], []
    for c in range(len(classes)):
        members = np.flatnonzero(labels == c)
        n = len(members)
        k = min(max(round(fraction * n), min_per_class), math.floor(max_share * n + 1e-9))
        chosen = np.random.default_rng([seed, c]).permutation(n)
        carved.append(members[chosen[:k]])
        kept.append(members[chosen[k:]])
    carved_all = np.sort(np.concatenate(carved))
    if not carved_all.size:
        raise SearchkitError(
            f"no class has the {math.ceil(1 / max_share)} training images that carving a validation split needs "
            f"(valid_max_share={max_share}); add images, add root/valid/<class>/ folders, or set the dataset "
            "option valid_fraction=0"
        )
    return np.sort(np.concatenate(kept)), carved_all


def _check_options(fraction: float, min_per_class: int, max_share: float, seed: int, skip_bad: bool, cache: bool,
                   workers: int | None) -> None:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 0.5:
        raise SearchkitError(
            f"valid_fraction must be a number in [0, 0.5] (the share of each class carved from "
            f"train/ when there is no valid/; 0 carves none), got {fraction!r}"
        )
    if isinstance(min_per_class, bool) or not isinstance(min_per_class, int) or min_per_class < 1:
        raise SearchkitError(f"valid_min_per_class must be a positive integer, got {min_per_class!r}")
    if isinstance(max_share, bool) or not isinstance(max_share, (int, float)) or not 0 < max_share <= 0.5:
        raise SearchkitError(f"valid_max_share must be a number in (0, 0.5] (the most of any class carved for "
                             f"validation), got {max_share!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SearchkitError(f"valid_seed must be a non-negative integer, got {seed!r}")
    for name, value in (("skip_bad", skip_bad), ("cache", cache)):
        if not isinstance(value, bool):
            raise SearchkitError(f"{name} must be true or false, got {value!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise SearchkitError(f"decode_workers must be a positive integer (or unset: automatic), got {workers!r}")


def _parse_size(image_size: int | Sequence[int]) -> tuple[int, int]:
    """``image_size`` as (H, W): an int means square."""
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise SearchkitError(
            f"image_size must be a positive int or (height, width), got {image_size!r}"
        )
    return size
