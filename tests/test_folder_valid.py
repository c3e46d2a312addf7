"""imagefolder without valid/: the carved, stratified, seeded validation split."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from searchkit.data import get_dataset
from searchkit.data.folder import carve_validation
from searchkit.errors import SearchkitError

COUNTS = {"ant": 40, "bee": 23, "cow": 7}


def write_folder(root: Path, counts: dict[str, int] = COUNTS, valid: bool = False) -> None:
    """2x2 RGB PNGs whose red value is the image number and green value 50 * class number."""
    for split in ("train", "test") + (("valid",) if valid else ()):
        for c, (cls, n) in enumerate(sorted(counts.items())):
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(n if split == "train" else 2):
                Image.new("RGB", (2, 2), (i, 50 * c, 0)).save(root / split / cls / f"{i:03d}.png")


def ids(split) -> set[tuple[int, int]]:
    """(class, image number) of every image of a split, read back from the pixels."""
    x, y = split.tensors()
    red = (x[:, 0, 0, 0] * split.std[0, 0, 0] + split.mean[0, 0, 0]) * 255
    return set(zip(y.tolist(), np.rint(red.numpy()).astype(int).tolist()))


def test_carved_split_sizes_stratification_and_no_overlap(tmp_path: Path) -> None:
    write_folder(tmp_path)
    d = get_dataset("imagefolder", root=tmp_path)
    record = d.info["valid_split"]
    # per class: min(max(round(0.1 n), 5), floor(0.2 n)): 40 -> 5, 23 -> 4, 7 -> 1
    assert record["per_class"] == [5, 4, 1] and record["images"] == len(d.valid) == 10
    assert record["train_images"] == len(d.train) == 70 - 10
    assert np.bincount(d.valid.labels).tolist() == [5, 4, 1]
    train, valid = ids(d.train), ids(d.valid)
    assert len(train) == 60 and len(valid) == 10 and not train & valid
    assert train | valid == {(c, i) for c, n in enumerate(COUNTS.values()) for i in range(n)}
    # statistics come from the training images that are left, not from the carved ones
    x, _ = d.train.tensors()
    raw = x * d.train.std + d.train.mean
    assert np.allclose(raw.mean(dim=(0, 2, 3)).numpy(), d.info["mean"], atol=1e-5)
    assert d.describe_valid() == (
        "validation split: 10 images carved from train/ (stratified, 5/4/1 per class, valid_fraction=0.1, "
        "valid_min_per_class=5, valid_max_share=0.2, valid_seed=0); training keeps 60 images")


def test_fraction_and_seed_options(tmp_path: Path) -> None:
    write_folder(tmp_path)
    a = get_dataset("imagefolder", root=tmp_path, valid_fraction=0.3, valid_min_per_class=1, valid_max_share=0.5)
    assert a.info["valid_split"]["per_class"] == [12, 7, 2]  # round(0.3 n): 12, 6.9 -> 7, 2.1 -> 2
    again = get_dataset("imagefolder", root=tmp_path, valid_fraction=0.3, valid_min_per_class=1, valid_max_share=0.5)
    assert ids(a.valid) == ids(again.valid)
    other = get_dataset("imagefolder", root=tmp_path, valid_fraction=0.3, valid_min_per_class=1, valid_max_share=0.5,
                        valid_seed=1)
    assert ids(other.valid) != ids(a.valid) and len(other.valid) == len(a.valid)
    none = get_dataset("imagefolder", root=tmp_path, valid_fraction=0)
    assert none.valid is None and len(none.train) == 70 and none.info["valid_split"] == {"source": "none"}
    assert none.describe_valid() == "validation split: none (imagefolder has no valid split)"


def test_classes_draw_independently() -> None:
    labels = np.repeat([0, 1], [30, 30])
    _, before = carve_validation(labels, 0.2, 1, 0.5, 0, ["a", "b"])
    labels_more = np.repeat([0, 1], [30, 50])  # class b grows; class a's draw must not move
    _, after = carve_validation(labels_more, 0.2, 1, 0.5, 0, ["a", "b"])
    assert before[before < 30].tolist() == after[after < 30].tolist()
    assert len(after[after >= 30]) == 10


def test_an_existing_valid_folder_is_used(tmp_path: Path) -> None:
    write_folder(tmp_path, valid=True)
    d = get_dataset("imagefolder", root=tmp_path, valid_fraction=0.3)
    assert len(d.train) == 70 and len(d.valid) == 6
    assert d.info["valid_split"] == {"source": "folder", "images": 6, "path": str(tmp_path / "valid")}
    assert d.describe_valid() == f"validation split: 6 images from {tmp_path / 'valid'}"


@pytest.mark.parametrize("options, message", [
    ({"valid_fraction": 0.7}, r"valid_fraction must be a number in \[0, 0.5\].*got 0.7"),
    ({"valid_fraction": -0.1}, "valid_fraction must be"),
    ({"valid_fraction": "10%"}, "valid_fraction must be"),
    ({"valid_fraction": True}, "valid_fraction must be"),
    ({"valid_min_per_class": 0}, "valid_min_per_class must be a positive integer, got 0"),
    ({"valid_seed": -1}, "valid_seed must be a non-negative integer"),
    ({"valid_max_share": 0}, r"valid_max_share must be a number in \(0, 0.5\]"),
    ({"valid_max_share": 0.6}, "valid_max_share must be"),
    ({"skip_bad": "yes"}, "skip_bad must be true or false, got 'yes'"),
    ({"cache": 1}, "cache must be true or false"),
    ({"decode_workers": 0}, "decode_workers must be a positive integer"),
    ({"valid_split": 0.1}, "has no option valid_split; its options are: image_size, valid_fraction"),
])
def test_option_errors(tmp_path: Path, options: dict, message: str) -> None:
    write_folder(tmp_path)
    with pytest.raises(SearchkitError, match=message):
        get_dataset("imagefolder", root=tmp_path, **options)


def test_a_class_too_small_to_carve_gives_none_and_says_so(tmp_path: Path) -> None:
    write_folder(tmp_path, {"ant": 10, "bee": 4})
    with pytest.warns(UserWarning, match=r"no validation images carved from class\(es\) 'bee' .*fewer than 5 "
                                         r"training images each \(at most valid_max_share=0.2"):
        d = get_dataset("imagefolder", root=tmp_path)
    assert d.info["valid_split"]["per_class"] == [2, 0] and len(d.train) == 12
    write_folder(tmp_path / "tiny", {"ant": 4, "bee": 3})
    with pytest.raises(SearchkitError, match=r"no class has the 5 training images .*root/valid/<class>/.*"
                                             "valid_fraction=0"):
        get_dataset("imagefolder", root=tmp_path / "tiny")
    assert get_dataset("imagefolder", root=tmp_path / "tiny", valid_fraction=0).valid is None


def test_the_carved_share_of_a_class_never_exceeds_valid_max_share() -> None:
    sizes = np.arange(1, 80)
    labels = np.repeat(np.arange(len(sizes)), sizes)
    for share in (0.1, 0.2, 0.29, 0.5):
        _, carved = carve_validation(labels, 0.1, 5, share, 0, [str(n) for n in sizes])
        taken = np.bincount(labels[carved], minlength=len(sizes))
        assert (taken <= np.floor(share * sizes + 1e-9)).all()
        assert taken[-1] == min(max(round(0.1 * 79), 5), int(share * 79 + 1e-9))  # the floor of 5 binds below
    assert taken[28] == 5 and taken[2] == 1  # share 0.5: 29 images -> max(3, 5) = 5; 3 images -> 1


def test_imbalance_is_said_and_a_small_class_keeps_most_of_its_images(tmp_path: Path) -> None:
    """Issue 29's folder, scaled down: 100 / 20 / 5 training images."""
    write_folder(tmp_path, {"big": 100, "mid": 20, "small": 5})
    with pytest.warns(UserWarning, match=r"imbalanced classes in .*train: the smallest, 'small', has 5 images, the "
                                         r"largest, 'big', 100 \(20.0:1\)"):
        d = get_dataset("imagefolder", root=tmp_path)
    assert d.info["class_counts"] == {"big": 100, "mid": 20, "small": 5}
    assert d.info["valid_split"]["per_class"] == [10, 4, 1]  # not 5 of the 5 small ones, nor half of them
    assert np.bincount(d.train.labels).tolist() == [90, 16, 4]


def test_balanced_classes_give_no_warning(tmp_path: Path, recwarn) -> None:
    write_folder(tmp_path, {"ant": 30, "bee": 11})  # 2.7:1, under the 3:1 threshold
    get_dataset("imagefolder", root=tmp_path)
    assert not [w for w in recwarn if "imbalanced" in str(w.message)]
