"""CIFAR-10 / CIFAR-100 and the NAS-Bench-201 ``cifar10-valid`` protocol.

Three layouts of the same data are read, whichever ``root`` holds (checked in this order):

- the official python batches: ``cifar-10-batches-py/`` (``data_batch_1..5``, ``test_batch``)
  or ``cifar-100-python/`` (``train``, ``test``), or ``root`` being that directory itself;
  each file a pickled dict with ``b"data"`` (N, 3072) uint8 (per image 1024 R, then 1024 G,
  then 1024 B values, each a row-major 32x32 plane) and ``b"labels"`` / ``b"fine_labels"``;
- image folders ``{train,test}/<class>/<NNNNN>.jpg`` (directly in ``root`` or in
  ``root/cifar10-jpeg/``), ``<class>`` a class name, ``NNNNN`` the official image index;
- the packed tarball ``cifar10-jpeg.tar.gz`` of that folder layout (``root`` may also be the
  archive itself), indexed in memory and decoded lazily.

Examples keep the official order: index i of a split is official image i. The batches load
into memory as uint8; the folder and tarball layouts decode only the images asked for.
"""
from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from searchkit.data.base import DatasetSplits
from searchkit.data.catalog import DATASETS
from searchkit.data.imageset import ImageSet
from searchkit.data.sources import DirTree, ImageTree, TreeDecoder, tar_tree
from searchkit.errors import SearchkitError
from searchkit.paths import find_data

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
CIFAR100_CLASSES = tuple(
    """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus
    butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch
    crab crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo
    keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle mountain mouse
    mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy
    porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper
    snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television
    tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm""".split()
)


@dataclass(frozen=True)
class CifarSpec:
    """Where and how one CIFAR variant is stored; ``mean``/``std`` are the usual constants."""

    name: str
    title: str
    batches_dir: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: str
    classes: tuple[str, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @property
    def folder(self) -> str:
        return f"{self.name}-jpeg"

    @property
    def tarball(self) -> str:
        return f"{self.folder}.tar.gz"

    def expected(self) -> str:
        return (
            f"expected {self.batches_dir}/ (official python batches), {{train,test}}/<class>/ "
            f"image folders, or {self.tarball}; set data.root"
        )


CIFAR10 = CifarSpec(
    name="cifar10",
    title="CIFAR-10",
    batches_dir="cifar-10-batches-py",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_files=("test_batch",),
    label_key="labels",
    classes=CIFAR10_CLASSES,
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.2470, 0.2435, 0.2616),
)
CIFAR100 = CifarSpec(
    name="cifar100",
    title="CIFAR-100",
    batches_dir="cifar-100-python",
    train_files=("train",),
    test_files=("test",),
    label_key="fine_labels",
    classes=CIFAR100_CLASSES,
    mean=(0.5071, 0.4865, 0.4409),
    std=(0.2673, 0.2564, 0.2762),
)


@DATASETS.register("cifar10")
def cifar10(root: str | Path | None = None) -> DatasetSplits:
    """CIFAR-10, plain protocol: train on all 50k, test on the 10k test set (no valid split)."""
    return _splits(CIFAR10, root)


@DATASETS.register("cifar100")
def cifar100(root: str | Path | None = None) -> DatasetSplits:
    """CIFAR-100 (fine labels), plain protocol: train 50k, test 10k, no valid split."""
    return _splits(CIFAR100, root)


@DATASETS.register("cifar10-valid")
def cifar10_valid(
    root: str | Path | None = None, split_file: str | Path | None = None
) -> DatasetSplits:
    """NAS-Bench-201 ``cifar10-valid``: train/valid = the official 25k/25k halves of the
    CIFAR-10 training set (``split_file``, default ``nb201/cifar10-valid-split.txt`` in the
    shared data), test = the CIFAR-10 test set.
    """
    if split_file is None:
        split_file = find_data("nb201/cifar10-valid-split.txt")
        if split_file is None:
            raise SearchkitError(
                "cifar10-valid split file not found: no nb201/cifar10-valid-split.txt in the "
                "data directories; set the split_file option"
            )
    full = _splits(CIFAR10, root)
    train_idx, valid_idx = read_valid_split(Path(split_file), len(full.train))
    full.info["split_file"] = str(split_file)
    return DatasetSplits(
        name="cifar10-valid",
        num_classes=full.num_classes,
        input_shape=full.input_shape,
        train=full.train.subset(train_idx),
        valid=full.train.subset(valid_idx),
        test=full.test,
        augment=True,
        info=full.info,
    )


def read_valid_split(path: Path, n_train: int) -> tuple[np.ndarray, np.ndarray]:
    """The official split file ``{"train": ["int", ["0", ...]], "valid": [...]}`` as two
    disjoint index arrays into a training set of ``n_train`` images.
    """
    if not path.is_file():
        raise SearchkitError(f"cifar10-valid split file not found at {path}; set split_file")
    try:
        content = json.loads(path.read_text())
        train, valid = (np.array(content[k][1], dtype=np.int64) for k in ("train", "valid"))
    except (ValueError, KeyError, IndexError, TypeError) as err:
        raise SearchkitError(
            f"cannot read split file {path} ({err}); expected "
            '{"train": ["int", ["0", ...]], "valid": ["int", [...]]}'
        ) from err
    for name, idx in (("train", train), ("valid", valid)):
        if idx.size == 0 or idx.min() < 0 or idx.max() >= n_train:
            raise SearchkitError(
                f"split file {path}: {name!r} indices must lie in 0..{n_train - 1} (the CIFAR-10 "
                f"training set found has {n_train} images); is it the matching data.root?"
            )
    if np.intersect1d(train, valid).size or len(np.unique(train)) + len(np.unique(valid)) != (
        len(train) + len(valid)
    ):
        raise SearchkitError(f"split file {path}: train and valid indices repeat or overlap")
    return train, valid


def _splits(spec: CifarSpec, root: str | Path | None) -> DatasetSplits:
    if root is None:
        found = find_data(spec.name)
        if found is None:
            raise SearchkitError(
                f"{spec.title} not found: no {spec.name}/ in the data directories; "
                + spec.expected()
            )
        root = found
    root = Path(root).expanduser()
    if not root.exists():
        raise SearchkitError(f"{spec.title} not found at {root}: {spec.expected()}")
    batches = root / spec.batches_dir
    if batches.is_dir() or (root / spec.train_files[0]).is_file():
        where = batches if batches.is_dir() else root
        train, test = (
            _load_batches(spec, where, files) for files in (spec.train_files, spec.test_files)
        )
        source = f"official python batches at {where}"
    else:
        tree = _image_tree(spec, root)
        train, test = (_load_tree_split(spec, tree, split) for split in ("train", "test"))
        source = f"image folders at {tree.location}"
    return DatasetSplits(
        name=spec.name,
        num_classes=len(spec.classes),
        input_shape=(3, 32, 32),
        train=train,
        test=test,
        valid=None,
        augment=True,
        info={
            "mean": spec.mean,
            "std": spec.std,
            "classes": list(spec.classes),
            "source": source,
            "root": str(root),
        },
    )


def _load_batches(spec: CifarSpec, where: Path, files: tuple[str, ...]) -> ImageSet:
    """Unpickle official batch files into one in-memory split: pixels (N,3,32,32) uint8."""
    data, labels = [], []
    for name in files:
        path = where / name
        if not path.is_file():
            raise SearchkitError(
                f"{spec.title} batch file missing: {path} (expected "
                f"{', '.join(spec.train_files + spec.test_files)} in {spec.batches_dir}/)"
            )
        expected = f"a pickled dict with b'data' (N, 3072) uint8 and b'{spec.label_key}'"
        try:
            with open(path, "rb") as f:
                batch = _BatchUnpickler(f, encoding="bytes").load()
            x = np.asarray(_get(batch, "data"), dtype=np.uint8)
            y = np.asarray(_get(batch, spec.label_key), dtype=np.int64)
        except Exception as err:  # unpickling arbitrary bytes can raise nearly anything
            raise SearchkitError(
                f"cannot read {spec.title} batch {path} ({type(err).__name__}: {err}); "
                f"expected {expected}"
            ) from err
        if x.ndim != 2 or x.shape[1] != 3072 or y.shape != (len(x),):
            raise SearchkitError(
                f"malformed {spec.title} batch {path}: data {x.shape}, {len(y)} labels; "
                f"expected {expected} with one label per row"
            )
        if y.size and (y.min() < 0 or y.max() >= len(spec.classes)):
            raise SearchkitError(
                f"malformed {spec.title} batch {path}: labels outside 0..{len(spec.classes) - 1}"
            )
        data.append(x)
        labels.append(y)
    pixels = torch.from_numpy(np.concatenate(data).reshape(-1, 3, 32, 32))
    return ImageSet(np.concatenate(labels), spec.mean, spec.std, pixels=pixels)


class _BatchUnpickler(pickle.Unpickler):
    """Loads plain containers and numpy arrays only, so a batch file cannot run code."""

    ALLOWED = frozenset(
        [("_codecs", "encode"), ("numpy", "ndarray"), ("numpy", "dtype")]
        + [
            (f"numpy.{core}.multiarray", name)
            for core in ("core", "_core")
            for name in ("_reconstruct", "scalar")
        ]
    )

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")
        return super().find_class(module, name)


def _get(batch: object, key: str) -> object:
    """``batch[b"key"]`` (the official bytes keys) or ``batch["key"]``."""
    if not isinstance(batch, dict):
        raise TypeError(f"the pickle holds a {type(batch).__name__}, not a dict")
    for k in (key.encode(), key):
        if k in batch:
            return batch[k]
    raise KeyError(f"no {key!r} entry")


def _image_tree(spec: CifarSpec, root: Path) -> ImageTree:
    if root.is_file():
        return tar_tree(root)
    for folder in (root, root / spec.folder):
        if (folder / "train").is_dir() or (folder / "test").is_dir():
            return DirTree(folder)
    if (root / spec.tarball).is_file():
        return tar_tree(root / spec.tarball)
    raise SearchkitError(f"{spec.title} not found at {root}: {spec.expected()}")


def _load_tree_split(spec: CifarSpec, tree: ImageTree, split: str) -> ImageSet:
    """One split of ``<split>/<class>/<NNNNN>.jpg`` ordered by the official index NNNNN."""
    classes = tree.files.get(split, {})
    if not any(classes.values()):
        present = ", ".join(f"{s}/" for s, c in tree.files.items() if any(c.values())) or "none"
        raise SearchkitError(
            f"{spec.title} image folders at {tree.location}: no {split}/<class>/ images "
            f"(found splits: {present}); expected train/ and test/ with one folder per class"
        )
    unknown = sorted(set(classes) - set(spec.classes))
    if unknown:
        raise SearchkitError(
            f"{spec.title} image folders at {tree.location}: unknown class folder(s) "
            f"{', '.join(f'{split}/{c}' for c in unknown[:5])}; expected the class names "
            f"{', '.join(spec.classes[:10])}{', ...' if len(spec.classes) > 10 else ''}"
        )
    label_of = {c: i for i, c in enumerate(spec.classes)}
    index, labels, rels = [], [], []
    for cls, names in classes.items():
        for name in names:
            stem = name.rsplit(".", 1)[0]
            if not stem.isdigit():
                raise SearchkitError(
                    f"{spec.title} image {tree.where(f'{split}/{cls}/{name}')}: expected a file "
                    "named by its official index, e.g. 00042.jpg"
                )
            index.append(int(stem))
            labels.append(label_of[cls])
            rels.append(f"{split}/{cls}/{name}")
    order = np.argsort(index, kind="stable")
    sorted_index = np.asarray(index)[order]
    if not np.array_equal(sorted_index, np.arange(len(index))):
        gaps = np.setdiff1d(np.arange(len(index)), sorted_index)
        dup = sorted_index[1:][np.diff(sorted_index) == 0]
        detail = f"index {dup[0]} repeats" if dup.size else f"index {gaps[0]} is missing"
        raise SearchkitError(
            f"{spec.title} image folders at {tree.location}: {split}/ images must be numbered "
            f"0..{len(index) - 1} by their official index, but {detail}"
        )
    decode = TreeDecoder(
        tree, [rels[i] for i in order], "RGB", (32, 32), hint=f" ({spec.title} images are 32x32)"
    )
    return ImageSet(np.asarray(labels)[order], spec.mean, spec.std, decode=decode)

