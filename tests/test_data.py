"""Tests for searchkit.data: registry, scoring batch, every dataset layout and its errors."""
from __future__ import annotations

import json
import os
import pickle
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from searchkit.data import DATASETS, get_dataset, scoring_batch
from searchkit.data import decoding, folder, sources
from searchkit.data.cifar import CIFAR10_CLASSES, CIFAR100_CLASSES, read_valid_split
from searchkit.errors import SearchkitError
from searchkit.paths import find_data

C10_MEAN = np.array([0.4914, 0.4822, 0.4465])
C10_STD = np.array([0.2470, 0.2435, 0.2616])


def unnormalise(x: torch.Tensor, mean, std) -> np.ndarray:
    """(N,C,H,W) normalised -> the scaled pixels (N,C,H,W) as float64."""
    mean = np.asarray(mean).reshape(1, -1, 1, 1)
    std = np.asarray(std).reshape(1, -1, 1, 1)
    return x.double().numpy() * std + mean


# --- fixtures written at runtime -------------------------------------------------------------


def write_official_cifar10(root: Path, per_batch: int = 20) -> dict[str, np.ndarray]:
    """Tiny cifar-10-batches-py/ in the exact official pickle format; returns what it wrote."""
    rng = np.random.default_rng(1)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    written = {"train_x": [], "train_y": []}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=per_batch)]
        batch = {
            b"batch_label": name.encode(),
            b"labels": labels,
            b"data": data,
            b"filenames": [f"img_{i}.png".encode() for i in range(per_batch)],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
        if name == "test_batch":
            written["test_x"], written["test_y"] = data, np.array(labels)
        else:
            written["train_x"].append(data)
            written["train_y"].append(np.array(labels))
    written["train_x"] = np.concatenate(written["train_x"])
    written["train_y"] = np.concatenate(written["train_y"])
    return written


def write_cifar_folders(root: Path, n_train: int = 12, n_test: int = 6) -> dict[str, np.ndarray]:
    """{train,test}/<class>/<NNNNN>.png (lossless) with labels i % 3 over three classes."""
    rng = np.random.default_rng(2)
    written = {}
    for split, n in (("train", n_train), ("test", n_test)):
        pixels = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        labels = np.array([(0, 3, 8)[(i * 7) % 3] for i in range(n)])  # airplane, cat, ship
        for i in range(n):
            folder = root / split / CIFAR10_CLASSES[labels[i]]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels[i]).save(folder / f"{i:05d}.png")
        written[f"{split}_x"], written[f"{split}_y"] = pixels, labels
    return written


def pack(folder: Path, archive: Path, top: str, pax: bool = False) -> None:
    """Tar+gzip ``folder`` as ``top/...`` (``pax``: with pax headers on every member)."""
    fmt = tarfile.PAX_FORMAT if pax else tarfile.GNU_FORMAT
    with tarfile.open(archive, "w:gz", format=fmt) as tar:
        for path in sorted(folder.rglob("*")):
            info = tar.gettarinfo(path, arcname=f"{top}/{path.relative_to(folder).as_posix()}")
            if pax:
                info.pax_headers = {"comment": "pax"}
            if path.is_file():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)


def write_imagefolder(root: Path, size=(10, 12), mode="RGB", splits=("train", "test")) -> None:
    """root/<split>/{dog,cat}/img<i>.png; channel values encode class and index."""
    for split in splits:
        for c, cls in enumerate(["dog", "cat"]):
            (root / split / cls).mkdir(parents=True)
            for i in range(3):
                value = 40 * c + 10 * i + 5
                Image.new(mode, (size[1], size[0]), value if mode == "L" else (value,) * 3).save(
                    root / split / cls / f"img{i}.png"
                )


# --- registry and get_dataset ----------------------------------------------------------------


def test_registry_lists_all_datasets():
    assert {"digits", "cifar10", "cifar100", "cifar10-valid", "imagefolder", "synthetic"} <= set(
        DATASETS.names()
    )
    assert len(CIFAR100_CLASSES) == len(set(CIFAR100_CLASSES)) == 100


def test_get_dataset_option_errors():
    with pytest.raises(SearchkitError, match="unknown dataset 'nope'.*digits"):
        get_dataset("nope")
    with pytest.raises(SearchkitError, match="no option bogus; its options are: split_seed"):
        get_dataset("digits", bogus=1)
    with pytest.raises(SearchkitError, match="built in.*unset data.root"):
        get_dataset("digits", root="/somewhere")


# --- digits ----------------------------------------------------------------------------------


def test_digits_shapes_partition_and_determinism():
    from sklearn.datasets import load_digits

    d = get_dataset("digits")
    assert (d.num_classes, d.input_shape, d.augment) == (10, (1, 8, 8), False)
    assert (len(d.train), len(d.valid), len(d.test)) == (1077, 360, 360)
    x, y = d.train[0]
    assert x.shape == (1, 8, 8) and x.dtype == torch.float32 and isinstance(y, int)
    X, Y = d.train.tensors()
    assert X.shape == (1077, 1, 8, 8) and Y.dtype == torch.int64
    assert abs(X.mean().item()) < 1e-5 and abs(X.std().item() - 1) < 1e-2
    # the three splits are a partition of the bundled set: same multiset of (pixels, label)
    rows = []
    for split in (d.train, d.valid, d.test):
        X, Y = split.tensors()
        pixels = np.rint(unnormalise(X, d.info["mean"], d.info["std"]) * 16).astype(int)
        flat = pixels.reshape(len(Y), -1)
        rows += [p.tobytes() + bytes([label]) for p, label in zip(flat, Y.tolist())]
    bunch = load_digits()
    expected = [p.astype(int).tobytes() + bytes([int(t)]) for p, t in zip(bunch.data, bunch.target)]
    assert sorted(rows) == sorted(expected)
    # stratified: every class is present in each split in roughly its share
    for split in (d.valid, d.test):
        assert np.bincount(split.labels, minlength=10).min() >= 30
    again = get_dataset("digits")
    assert torch.equal(again.test.tensors()[0], d.test.tensors()[0])
    other = get_dataset("digits", split_seed=1)
    assert not torch.equal(other.test.tensors()[0], d.test.tensors()[0])


# --- scoring batch ---------------------------------------------------------------------------


def test_scoring_batch_seeded():
    d = get_dataset("digits")
    a, b = scoring_batch(d, 64, seed=3), scoring_batch(d, 64, seed=3)
    assert a.x.shape == (64, 1, 8, 8) and a.y.shape == (64,) and a.y.dtype == torch.int64
    assert a.fingerprint() == b.fingerprint() and a.num_classes == 10
    assert scoring_batch(d, 64, seed=4).fingerprint() != a.fingerprint()
    assert 0 <= a.y.min() and a.y.max() < 10
    assert scoring_batch(d, 16, seed=3, split="test").x.shape == (16, 1, 8, 8)
    # the documented choice of examples
    idx = np.random.default_rng(3).choice(len(d.train), 64, replace=False)
    x, y = d.train.batch(idx)
    assert torch.equal(x, a.x) and torch.equal(y, a.y)


def test_scoring_batch_errors():
    d = get_dataset("synthetic", n_valid=0)
    with pytest.raises(SearchkitError, match="batch size 257 .* 256 examples"):
        scoring_batch(d, 257, seed=0)
    with pytest.raises(SearchkitError, match="has no valid split"):
        scoring_batch(d, 8, seed=0, split="valid")
    with pytest.raises(SearchkitError, match="unknown split 'val'"):
        scoring_batch(d, 8, seed=0, split="val")


def test_scoring_batch_on_a_plain_dataset():
    d = get_dataset("synthetic")
    d.train = torch.utils.data.TensorDataset(torch.zeros(10, 3, 32, 32), torch.arange(10))
    batch = scoring_batch(d, 4, seed=0)
    assert batch.x.shape == (4, 3, 32, 32) and sorted(batch.y.tolist()) == sorted(
        np.random.default_rng(0).choice(10, 4, replace=False).tolist()
    )


# --- synthetic -------------------------------------------------------------------------------


def test_synthetic_is_seeded_and_learnable():
    options = dict(num_classes=4, shape=(2, 6, 6), n_train=200, seed=5)
    d = get_dataset("synthetic", **options)
    assert d.input_shape == (2, 6, 6) and len(d.valid) == 64 and len(d.test) == 64
    X, Y = d.train.tensors()
    assert torch.equal(X, get_dataset("synthetic", **options).train.tensors()[0])
    assert np.bincount(Y.numpy()).tolist() == [50] * 4
    # nearest class centroid (from train) classifies the test split well above chance
    centroids = torch.stack([X[Y == k].mean(0).flatten() for k in range(4)])
    Xt, Yt = d.test.tensors()
    predicted = torch.cdist(Xt.flatten(1), centroids).argmin(1)
    assert (predicted == Yt).float().mean() > 0.9
    with pytest.raises(SearchkitError, match="shape must be"):
        get_dataset("synthetic", shape=(32, 32))


# --- CIFAR: official batches -----------------------------------------------------------------


def test_cifar10_official_batches(tmp_path):
    written = write_official_cifar10(tmp_path)
    for root in (tmp_path, tmp_path / "cifar-10-batches-py"):
        d = get_dataset("cifar10", root=root)
        assert (len(d.train), len(d.test), d.valid, d.num_classes) == (100, 20, None, 10)
        assert d.input_shape == (3, 32, 32) and d.augment
        assert d.info["mean"] == tuple(C10_MEAN) and d.info["std"] == tuple(C10_STD)
        X, Y = d.train.tensors()
        assert Y.tolist() == written["train_y"].tolist()
        assert d.test.labels.tolist() == written["test_y"].tolist()
    # pixel layout: row k of a batch is 1024 R, 1024 G, 1024 B values, each plane row-major 32x32
    pixels = np.rint(unnormalise(X, C10_MEAN, C10_STD) * 255).astype(np.uint8)
    k, r, c = 47, 5, 17
    for channel in range(3):
        assert pixels[k, channel, r, c] == written["train_x"][k, channel * 1024 + r * 32 + c]
    assert np.array_equal(pixels.reshape(100, 3072), written["train_x"])
    x, y = d.train[k]
    assert torch.allclose(x, X[k]) and y == written["train_y"][k]


def test_cifar100_official_batches(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, n in (("train", 30), ("test", 10)):
        batch = {
            b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
            b"fine_labels": list(range(90, 90 + n % 10)) + [99] * (n - n % 10),
            b"coarse_labels": [0] * n,
        }
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
    d = get_dataset("cifar100", root=tmp_path)
    assert (len(d.train), len(d.test), d.num_classes) == (30, 10, 100)
    assert d.train.labels.max() == 99 and d.info["classes"][99] == "worm"
    assert scoring_batch(d, 8, seed=0).x.shape == (8, 3, 32, 32)


def test_official_batch_errors(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_official_cifar10(tmp_path)
    (folder / "data_batch_3").write_bytes(b"this is not a pickle")
    with pytest.raises(
        SearchkitError, match=r"cannot read CIFAR-10 batch .*_3 .*expected a pickled"
    ):
        get_dataset("cifar10", root=tmp_path)
    with open(folder / "data_batch_3", "wb") as f:
        pickle.dump({b"data": np.zeros((5, 100), np.uint8), b"labels": [0] * 5}, f)
    with pytest.raises(SearchkitError, match=r"malformed CIFAR-10 batch .*_3: data \(5, 100\)"):
        get_dataset("cifar10", root=tmp_path)
    with open(folder / "data_batch_3", "wb") as f:
        pickle.dump({b"data": np.zeros((5, 3072), np.uint8)}, f)
    with pytest.raises(SearchkitError, match="no 'labels' entry"):
        get_dataset("cifar10", root=tmp_path)
    with open(folder / "data_batch_3", "wb") as f:
        pickle.dump({b"data": Path("x"), b"labels": []}, f)  # a batch file may not name classes
    with pytest.raises(SearchkitError, match="refusing to load pathlib"):
        get_dataset("cifar10", root=tmp_path)
    (folder / "data_batch_3").unlink()
    with pytest.raises(SearchkitError, match=r"batch file missing: .*_3 \(expected data_batch_1"):
        get_dataset("cifar10", root=tmp_path)


def test_cifar_root_missing(tmp_path):
    expected = (
        "expected cifar-10-batches-py/ (official python batches), {train,test}/<class>/ image "
        "folders, or cifar10-jpeg.tar.gz; set data.root"
    )
    with pytest.raises(SearchkitError) as err:
        get_dataset("cifar10", root=tmp_path / "nope")
    assert str(err.value) == f"CIFAR-10 not found at {tmp_path / 'nope'}: {expected}"
    with pytest.raises(SearchkitError, match="CIFAR-10 not found at .*set data.root"):
        get_dataset("cifar10", root=tmp_path)  # exists but holds nothing usable
    with pytest.raises(SearchkitError, match="CIFAR-100 not found.*cifar-100-python/"):
        get_dataset("cifar100", root=tmp_path)


# --- CIFAR: image folders and tarballs -------------------------------------------------------


def check_cifar_folder(d, written) -> None:
    assert (len(d.train), len(d.test)) == (12, 6)
    assert d.train.labels.tolist() == written["train_y"].tolist()
    X, Y = d.test.tensors()
    assert Y.tolist() == written["test_y"].tolist()
    pixels = np.rint(unnormalise(X, C10_MEAN, C10_STD) * 255).astype(np.uint8)
    assert np.array_equal(pixels, written["test_x"].transpose(0, 3, 1, 2))


def test_cifar10_image_folders(tmp_path):
    written = write_cifar_folders(tmp_path / "cifar10-jpeg")
    for root in (tmp_path, tmp_path / "cifar10-jpeg"):
        check_cifar_folder(get_dataset("cifar10", root=root), written)


@pytest.mark.parametrize("pax", [False, True])
def test_cifar10_tarball(tmp_path, pax):
    written = write_cifar_folders(tmp_path / "src")
    pack(tmp_path / "src", tmp_path / "cifar10-jpeg.tar.gz", "cifar10-jpeg", pax=pax)
    d = get_dataset("cifar10", root=tmp_path)
    check_cifar_folder(d, written)
    assert d.info["source"].endswith("cifar10-jpeg.tar.gz")
    check_cifar_folder(get_dataset("cifar10", root=tmp_path / "cifar10-jpeg.tar.gz"), written)
    # lazily decoded splits pickle (DataLoader workers) and load through a DataLoader
    train = pickle.loads(pickle.dumps(d.train.subset([3, 1])))
    assert train.labels.tolist() == written["train_y"][[3, 1]].tolist()
    x, y = next(iter(torch.utils.data.DataLoader(d.train, batch_size=5)))
    assert x.shape == (5, 3, 32, 32) and y.tolist() == written["train_y"][:5].tolist()


def test_cifar_folder_errors(tmp_path):
    write_cifar_folders(tmp_path)
    (tmp_path / "train" / "ship" / "notanumber.png").write_bytes(b"")
    with pytest.raises(SearchkitError, match=r"notanumber.png: expected a file named by its"):
        get_dataset("cifar10", root=tmp_path)
    (tmp_path / "train" / "ship" / "notanumber.png").unlink()
    (image,) = (tmp_path / "train").glob("*/00004.png")
    image.rename(image.with_name("00099.png"))
    with pytest.raises(
        SearchkitError, match=r"train/ images must be numbered 0..11 .* 4 is missing"
    ):
        get_dataset("cifar10", root=tmp_path)
    image.with_name("00099.png").rename(image)
    (tmp_path / "train" / "kitten").mkdir()
    with pytest.raises(
        SearchkitError, match=r"unknown class folder\(s\) train/kitten; expected the"
    ):
        get_dataset("cifar10", root=tmp_path)
    (tmp_path / "train" / "kitten").rmdir()
    for path in (tmp_path / "test").rglob("*.png"):
        path.unlink()
    with pytest.raises(SearchkitError, match=r"no test/<class>/ images \(found splits: train/\)"):
        get_dataset("cifar10", root=tmp_path)


def test_cifar_tarball_errors(tmp_path):
    (tmp_path / "cifar10-jpeg.tar.gz").write_bytes(b"\x1f\x8bnot really gzip")
    with pytest.raises(SearchkitError, match="cannot read archive .*cifar10-jpeg.tar.gz"):
        get_dataset("cifar10", root=tmp_path)
    (tmp_path / "cifar10-jpeg.tar.gz").write_bytes(b"x" * 2048)
    with pytest.raises(SearchkitError, match="not a tar archive"):
        get_dataset("cifar10", root=tmp_path)
    # a corrupt image is reported when decoded, with its place in the archive
    write_cifar_folders(tmp_path / "src")
    (tmp_path / "src" / "train" / "airplane" / "00000.png").write_bytes(b"garbage")
    pack(tmp_path / "src", tmp_path / "bad.tar.gz", "cifar10-jpeg")
    d = get_dataset("cifar10", root=tmp_path / "bad.tar.gz")
    with pytest.raises(
        SearchkitError, match=r"cannot decode image .*bad.tar.gz:cifar10-jpeg/train/air"
    ):
        d.train[0]


# --- cifar10-valid ---------------------------------------------------------------------------


def test_cifar10_valid_with_fixture(tmp_path):
    written = write_official_cifar10(tmp_path)
    split = tmp_path / "split.txt"
    split.write_text('{"train": ["int", ["0", "2", "99"]], "valid": ["int", ["1", "5"]]}')
    d = get_dataset("cifar10-valid", root=tmp_path, split_file=split)
    assert (len(d.train), len(d.valid), len(d.test)) == (3, 2, 20)
    assert d.train.labels.tolist() == written["train_y"][[0, 2, 99]].tolist()
    assert d.valid.labels.tolist() == written["train_y"][[1, 5]].tolist()
    full = get_dataset("cifar10", root=tmp_path).train
    assert torch.equal(d.valid.tensors()[0], full.batch([1, 5])[0])
    split.write_text('{"train": ["int", ["0", "100"]], "valid": ["int", ["1"]]}')
    with pytest.raises(SearchkitError, match=r"'train' indices must lie in 0..99 .* 100 images"):
        get_dataset("cifar10-valid", root=tmp_path, split_file=split)
    split.write_text('{"train": ["int", ["0", "1"]], "valid": ["int", ["1"]]}')
    with pytest.raises(SearchkitError, match="repeat or overlap"):
        get_dataset("cifar10-valid", root=tmp_path, split_file=split)
    split.write_text("{'train': oops")
    with pytest.raises(SearchkitError, match=r"cannot read split file .*expected \{\"train\""):
        get_dataset("cifar10-valid", root=tmp_path, split_file=split)
    with pytest.raises(SearchkitError, match="split file not found at"):
        get_dataset("cifar10-valid", root=tmp_path, split_file=tmp_path / "none.txt")


# --- imagefolder -----------------------------------------------------------------------------


def test_imagefolder_rgb_and_gray(tmp_path):
    write_imagefolder(tmp_path / "rgb", splits=("train", "valid", "test"))
    d = get_dataset("imagefolder", root=tmp_path / "rgb")
    assert d.info["classes"] == ["cat", "dog"] and d.num_classes == 2
    assert d.input_shape == (3, 10, 12) and (len(d.train), len(d.valid), len(d.test)) == (6, 6, 6)
    X, Y = d.train.tensors()
    assert Y.tolist() == [0, 0, 0, 1, 1, 1]
    assert abs(X.mean().item()) < 1e-5 and abs(X.std().item() - 1) < 0.05
    values = unnormalise(X, d.info["mean"], d.info["std"])[:, 0, 0, 0] * 255
    assert np.allclose(values, [45, 55, 65, 5, 15, 25])  # cat (c=1) first, then dog
    write_imagefolder(tmp_path / "gray", mode="L", splits=("train", "test"))
    g = get_dataset("imagefolder", root=tmp_path / "gray", image_size=4, valid_fraction=0)
    assert g.input_shape == (1, 4, 4) and g.valid is None
    assert scoring_batch(g, 3, seed=0, split="test").x.shape == (3, 1, 4, 4)
    r = get_dataset("imagefolder", root=tmp_path / "rgb", image_size=(6, 8))
    assert r.test[0][0].shape == (3, 6, 8)


def test_imagefolder_errors(tmp_path):
    with pytest.raises(SearchkitError, match="'imagefolder' needs data.root"):
        get_dataset("imagefolder")
    with pytest.raises(SearchkitError, match="image folder not found at .*set data.root"):
        get_dataset("imagefolder", root=tmp_path / "nope")
    write_imagefolder(tmp_path, splits=("train",))
    with pytest.raises(SearchkitError, match="has no test/ directory"):
        get_dataset("imagefolder", root=tmp_path)
    (tmp_path / "test").mkdir()
    with pytest.raises(SearchkitError, match=r"image folder .*test is empty: expected <class>/"):
        get_dataset("imagefolder", root=tmp_path)
    (tmp_path / "test" / "dog").mkdir()
    with pytest.raises(SearchkitError, match=r"1 problem found before any work .*: test/dog/: empty class folder"):
        get_dataset("imagefolder", root=tmp_path)
    Image.new("RGB", (12, 10)).save(tmp_path / "test" / "dog" / "a.jpg")
    (tmp_path / "test" / "bird").mkdir()
    Image.new("RGB", (12, 10)).save(tmp_path / "test" / "bird" / "a.jpg")
    with pytest.raises(SearchkitError, match="class folder.* bird that train/ lacks"):
        get_dataset("imagefolder", root=tmp_path)
    (tmp_path / "test" / "bird" / "a.jpg").unlink()
    (tmp_path / "test" / "bird").rmdir()
    Image.new("RGB", (5, 5)).save(tmp_path / "test" / "dog" / "b.jpg")  # a test image of another size is resized
    assert get_dataset("imagefolder", root=tmp_path, valid_fraction=0).test.tensors()[0].shape == (2, 3, 10, 12)
    with pytest.raises(SearchkitError, match="image_size must be"):
        get_dataset("imagefolder", root=tmp_path, image_size=(0, 3))


# --- the shared CIFAR-10 tarball and NAS-Bench-201 split (skipped where absent) ---------------


@pytest.fixture(scope="module")
def shared_cifar10():
    if find_data("cifar10/cifar10-jpeg.tar.gz") is None:
        pytest.skip("shared CIFAR-10 tarball not found (../shared/data/cifar10)")
    return get_dataset("cifar10")


def test_shared_tarball_scoring_batch(shared_cifar10, monkeypatch):
    d = shared_cifar10
    assert (len(d.train), len(d.test)) == (50000, 10000)
    decodes = []
    real = sources.read_image
    monkeypatch.setattr(sources, "read_image", lambda *a: decodes.append(a[1]) or real(*a))
    start = time.perf_counter()
    batch = scoring_batch(d, 64, seed=0)
    elapsed = time.perf_counter() - start
    assert len(decodes) == 64 and elapsed < 2.0
    assert batch.x.shape == (64, 3, 32, 32) and batch.x.dtype == torch.float32
    # labels match the class folder of the official index chosen by the seeded draw
    idx = np.random.default_rng(0).choice(50000, 64, replace=False)
    tree = sources.tar_tree(find_data("cifar10/cifar10-jpeg.tar.gz"))
    for i, label, where in zip(idx, batch.y.tolist(), decodes):
        assert f"{i:05d}.jpg" in tree.files["train"][CIFAR10_CLASSES[label]]
        assert where.endswith(f"train/{CIFAR10_CLASSES[label]}/{i:05d}.jpg")
    # pixels are the member decoded by PIL, normalised with the official statistics
    member = tree.open(f"train/{CIFAR10_CLASSES[batch.y[0]]}/{idx[0]:05d}.jpg")
    expected = np.asarray(Image.open(member).convert("RGB")).transpose(2, 0, 1) / 255.0
    assert np.allclose(unnormalise(batch.x[:1], C10_MEAN, C10_STD)[0], expected, atol=1e-5)
    assert batch.fingerprint() == scoring_batch(d, 64, seed=0).fingerprint()


def test_shared_cifar10_valid_split(shared_cifar10):
    path = find_data("nb201/cifar10-valid-split.txt")
    if path is None:
        pytest.skip("shared NAS-Bench-201 split file not found (../shared/data/nb201)")
    train, valid = read_valid_split(path, 50000)
    assert len(train) == len(valid) == 25000
    assert np.array_equal(np.sort(np.concatenate([train, valid])), np.arange(50000))
    d = get_dataset("cifar10-valid")
    assert (len(d.train), len(d.valid), len(d.test)) == (25000, 25000, 10000)
    assert np.array_equal(d.valid.labels, shared_cifar10.train.labels[valid])
    assert np.bincount(d.train.labels).min() > 2000
    x, _ = d.valid.batch([0])
    assert torch.equal(x, shared_cifar10.train.batch([valid[0]])[0])


# --- imagefolder: folders as people have them, checked and decoded once ---------------------


def write_mixed_folder(root: Path) -> None:
    """Two groups of classes, JPEG and PNG, grayscale, RGB and RGBA, of mixed sizes:
    train/animals/{cat,dog}/, train/vehicles/car/ (and the same in test/)."""
    for split in ("train", "test"):
        for c, cls in enumerate(["animals/cat", "animals/dog", "vehicles/car"]):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(6):
                value = 30 * c + 10 * i
                size = (20 + 4 * i, 16 + 2 * c)  # W x H: shorter sides 16, 18, 20
                if i % 3 == 0:
                    Image.new("L", size, value).save(folder / f"{i}.png")
                elif i % 3 == 1:
                    Image.new("RGB", size, (value, 0, 200)).save(folder / f"{i}.jpg", quality=95)
                else:
                    Image.new("RGBA", size, (value, 100, 0, 255)).save(folder / f"{i}.png")


def test_imagefolder_as_people_have_them(tmp_path):
    write_mixed_folder(tmp_path)
    with pytest.warns(UserWarning, match=r"mixed sizes; each is scaled and centre-cropped to 18x18 \(training "
                                         r"images of \d+ sizes: their median shorter side 18, at most 64"):
        d = get_dataset("imagefolder", root=tmp_path, valid_fraction=0)
    assert d.info["classes"] == ["animals/cat", "animals/dog", "vehicles/car"] and d.input_shape == (3, 18, 18)
    X, Y = d.train.tensors()
    raw = torch.from_numpy(unnormalise(X, d.info["mean"], d.info["std"])).float() * 255
    assert Y.tolist() == [0] * 6 + [1] * 6 + [2] * 6
    gray, jpeg, rgba = raw[6], raw[7], raw[8]  # dog: c=1, images 0 (L), 1 (JPEG), 2 (RGBA)
    assert torch.allclose(gray, torch.full_like(gray, 30), atol=1e-3)  # grayscale: its value in every channel
    assert abs(jpeg[0].mean() - 40) < 3 and abs(jpeg[2].mean() - 200) < 3  # JPEG: lossy, close
    assert torch.allclose(rgba[:, 0, 0], torch.tensor([50.0, 100.0, 0.0]), atol=1e-3)
    # the normalisation is every training pixel's per-channel mean and std, and is recorded
    scaled = raw / 255
    assert np.allclose(scaled.mean(dim=(0, 2, 3)).numpy(), d.info["mean"], atol=1e-6)
    assert np.allclose(scaled.std(dim=(0, 2, 3), correction=0).numpy(), d.info["std"], atol=1e-6)
    described = d.describe()
    assert described["mean"] == list(d.info["mean"]) and described["input_shape"] == [3, 18, 18]
    assert described["classes"] == d.info["classes"] and described["image_size_rule"].startswith("18x18")
    stated = get_dataset("imagefolder", root=tmp_path, valid_fraction=0, image_size=(8, 12))
    assert stated.input_shape == (3, 8, 12) and stated.info["image_size_rule"] == "8x12 (data.options.image_size)"


def test_imagefolder_transparency_and_grayscale(tmp_path):
    for split in ("train", "test"):
        for cls in ("a", "b"):
            (tmp_path / split / cls).mkdir(parents=True)
            Image.new("LA", (4, 4), (200, 0)).save(tmp_path / split / cls / "clear.png")  # fully transparent
            Image.new("L", (4, 4), 90).save(tmp_path / split / cls / "gray.jpg")
    d = get_dataset("imagefolder", root=tmp_path, valid_fraction=0)
    assert d.input_shape == (1, 4, 4) and d.info["image_size_rule"] == "4x4 (the size of every training image)"
    raw = torch.from_numpy(unnormalise(d.train.tensors()[0], d.info["mean"], d.info["std"])).float() * 255
    assert torch.allclose(raw[0], torch.zeros(1, 4, 4), atol=1e-3)  # hidden pixels composited over black
    assert torch.allclose(raw[1], torch.full((1, 4, 4), 90.0), atol=2)


def test_imagefolder_default_size_is_capped(tmp_path):
    for split in ("train", "test"):
        for cls, size in (("a", (100, 80)), ("b", (90, 120))):
            (tmp_path / split / cls).mkdir(parents=True)
            Image.new("RGB", size).save(tmp_path / split / cls / "x.png")
    with pytest.warns(UserWarning, match="median shorter side 85, at most 64"):
        assert get_dataset("imagefolder", root=tmp_path, valid_fraction=0).input_shape == (3, 64, 64)


def test_imagefolder_is_decoded_once_then_read_from_the_cache(tmp_path, monkeypatch):
    write_imagefolder(tmp_path / "f", splits=("train", "valid", "test"))
    first = get_dataset("imagefolder", root=tmp_path / "f")
    decodes = []
    real = decoding.image_array
    monkeypatch.setattr(decoding, "image_array", lambda *a, **k: decodes.append(a[1]) or real(*a, **k))
    again = get_dataset("imagefolder", root=tmp_path / "f")
    assert (first.info["decoded_from"], again.info["decoded_from"]) == ("files", "cache") and decodes == []
    for split in ("train", "valid", "test"):
        a, b = getattr(first, split).tensors(), getattr(again, split).tensors()
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert again.info["mean"] == first.info["mean"]
    image = tmp_path / "f" / "test" / "dog" / "img0.png"
    Image.new("RGB", (12, 10), (1, 2, 3)).save(image)
    os.utime(image, ns=(1, 1))  # a replaced file (new size or mtime) is decoded again
    changed = get_dataset("imagefolder", root=tmp_path / "f")
    assert changed.info["decoded_from"] == "files" and len(decodes) == 18
    raw = torch.from_numpy(unnormalise(changed.test.tensors()[0], changed.info["mean"], changed.info["std"])).float() * 255
    assert torch.allclose(raw[3, :, 0, 0], torch.tensor([1.0, 2.0, 3.0]), atol=1e-3)  # test/dog/img0.png, new pixels
    assert get_dataset("imagefolder", root=tmp_path / "f", image_size=4).info["decoded_from"] == "files"
    cached = sorted(p.name for p in (tmp_path / "searchkit-cache" / "images").iterdir())
    # one entry (.npy + .json) per folder and settings: the changed folder's replaced the first
    assert len(cached) == 4 and all(name.endswith((".npy", ".json")) for name in cached)
    assert get_dataset("imagefolder", root=tmp_path / "f", cache=False).info["decoded_from"] == "files"
    assert len(list((tmp_path / "searchkit-cache" / "images").iterdir())) == 4


@pytest.mark.filterwarnings("ignore::searchkit.data.folder.InputSizeWarning")
def test_imagefolder_worker_processes_decode_the_same_pixels(tmp_path, monkeypatch):
    write_mixed_folder(tmp_path)
    monkeypatch.setattr(decoding, "CHUNK", 5)  # 36 images: 8 chunks over 2 processes
    one = get_dataset("imagefolder", root=tmp_path, valid_fraction=0, cache=False, decode_workers=1)
    two = get_dataset("imagefolder", root=tmp_path, valid_fraction=0, cache=False, decode_workers=2)
    assert torch.equal(one.train.tensors()[0], two.train.tensors()[0])
    assert torch.equal(one.test.tensors()[0], two.test.tensors()[0])


def test_an_unwritable_cache_loses_nothing(tmp_path, monkeypatch):
    write_imagefolder(tmp_path / "f")
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("SEARCHKIT_CACHE", str(tmp_path / "file"))
    with pytest.warns(decoding.CacheWarning, match=r"cannot write the decoded-image cache in .*file/images .*goes on "
                                                   "without it.*set SEARCHKIT_CACHE to another directory, or set "
                                                   "data.options.cache=false"):
        d = get_dataset("imagefolder", root=tmp_path / "f", valid_fraction=0)
    assert d.num_classes == 2 and d.train.tensors()[0].shape == (6, 3, 10, 12)
    assert (tmp_path / "file").read_text() == ""


# --- imagefolder: every image of every split checked before any work (issue 29) -------------


def test_a_corrupt_test_image_is_found_before_any_work(tmp_path):
    write_imagefolder(tmp_path)
    (tmp_path / "test" / "cat" / "img1.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(SearchkitError, match=r"image folder .*: 1 problem found before any work .*: test/cat/img1.png: "
                                             r"unreadable image \(.*\); replace or remove it; fix them, or set "
                                             "data.options.skip_bad=true"):
        get_dataset("imagefolder", root=tmp_path, valid_fraction=0)


def test_a_truncated_jpeg_with_a_good_header_is_found_by_the_decode(tmp_path):
    write_imagefolder(tmp_path)
    good = tmp_path / "good.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (10, 12, 3), dtype=np.uint8)).save(good)
    (tmp_path / "valid" / "dog").mkdir(parents=True)
    (tmp_path / "valid" / "dog" / "cut.jpg").write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    good.unlink()
    with pytest.raises(SearchkitError, match=r"1 problem .*: valid/dog/cut.jpg: unreadable image \((?i:truncated)"):
        get_dataset("imagefolder", root=tmp_path)


def test_every_problem_is_listed_at_once(tmp_path):
    write_imagefolder(tmp_path)
    for split, cls in (("train", "cat"), ("train", "dog"), ("test", "dog")):
        (tmp_path / split / cls / "bad.png").write_bytes(b"not an image")
    (tmp_path / "test" / "dog" / "notes.txt").write_text("labels")
    (tmp_path / "train" / "bird").mkdir()
    (tmp_path / "train" / "dog" / "more").mkdir()
    (tmp_path / "train" / "stray.jpg").write_bytes(b"")
    with pytest.raises(SearchkitError) as caught:
        get_dataset("imagefolder", root=tmp_path, valid_fraction=0)
    message = str(caught.value)
    assert "\n" not in message and "7 problems found before any work" in message
    # sorted by path: the first three named, the rest in the written list
    assert ": test/dog/bad.png: unreadable image" in message and "test/dog/notes.txt: not an image" in message
    assert "train/bird/: empty class folder (no images); add images or remove it" in message
    listed = Path(message.split("all listed in ")[1].split(";")[0])
    lines = listed.read_text().splitlines()
    assert lines[0] == f"7 problems in image folder {tmp_path}" and len(lines) == 8
    assert lines[5] == (f"{tmp_path}/train/dog/bad.png: unreadable image (cannot identify image file "
                        f"'{tmp_path}/train/dog/bad.png'); replace or remove it")
    assert lines[6].startswith(f"{tmp_path}/train/dog/more/: a folder inside class folder train/dog/")
    assert lines[7] == f"{tmp_path}/train/stray.jpg: an image outside a class folder; move it into train/<class>/"


def test_a_broken_link_is_a_listed_problem(tmp_path):
    write_imagefolder(tmp_path)
    (tmp_path / "train" / "cat" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    with pytest.raises(SearchkitError, match=r"1 problem .*: train/cat/gone.png: cannot be read \(No such file or "
                                             r"directory\); replace or remove it"):
        get_dataset("imagefolder", root=tmp_path, valid_fraction=0)


def test_folders_nest_one_level_only(tmp_path):
    write_imagefolder(tmp_path)
    deep = tmp_path / "train" / "group" / "cls" / "deeper"
    deep.mkdir(parents=True)
    Image.new("RGB", (12, 10)).save(deep / "x.png")
    with pytest.raises(SearchkitError, match=r"1 problem .*: train/group/cls/deeper/: a folder "
                                             r"inside class folder train/group/cls/; classes sit at train/<class>/ or "
                                             r"train/<group>/<class>/: move it"):
        get_dataset("imagefolder", root=tmp_path, valid_fraction=0)


def test_a_colour_image_the_size_sample_missed_makes_the_folder_rgb(tmp_path, monkeypatch):
    monkeypatch.setattr(folder, "SIZE_SAMPLE", 2)  # sizes and channels guessed from 2 training images
    for split in ("train", "test"):
        for cls in ("a", "b"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(4):
                Image.new("L", (4, 4), 10 * i).save(tmp_path / split / cls / f"{i}.png")
    Image.new("RGB", (4, 4), (0, 0, 255)).save(tmp_path / "test" / "b" / "3.png")
    d = get_dataset("imagefolder", root=tmp_path, valid_fraction=0)
    assert d.input_shape == (3, 4, 4)
    assert d.info["image_size_rule"] == "4x4 (the size of every training image in a seeded sample of 2)"
    raw = torch.from_numpy(unnormalise(d.test.tensors()[0], d.info["mean"], d.info["std"])).float() * 255
    assert torch.allclose(raw[7, :, 0, 0], torch.tensor([0.0, 0.0, 255.0]), atol=1e-3)
    assert torch.allclose(raw[6, :, 0, 0], torch.tensor([20.0, 20.0, 20.0]), atol=1e-3)


def test_a_trained_run_records_the_input_format(tmp_path):
    """What an exported model needs (classes, input shape, the training split's mean/std) is in
    evaluation.json (and best.json's final evaluation), read from the dataset that trained."""
    from searchkit.cli import main

    write_mixed_folder(tmp_path / "f")
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    with pytest.warns(UserWarning, match="the training set has 18 images"):
        assert main(["evaluate", "--quiet", "--arch", arch, "--dataset", "imagefolder", "--out", str(tmp_path / "e"),
                     "--epochs", "1", f"data.root={tmp_path / 'f'}", "data.options={image_size: 8, valid_fraction: 0}",
                     "space.build={C: 2, N: 1}"]) == 0
    recorded = json.loads((tmp_path / "e" / "evaluation.json").read_text())["details"]["dataset"]
    d = get_dataset("imagefolder", root=tmp_path / "f", image_size=8, valid_fraction=0)
    assert recorded == {"name": "imagefolder", "classes": ["animals/cat", "animals/dog", "vehicles/car"],
                        "input_shape": [3, 8, 8], "mean": list(d.info["mean"]), "std": list(d.info["std"]),
                        "image_size_rule": "8x8 (data.options.image_size)",
                        "class_counts": {"animals/cat": 6, "animals/dog": 6, "vehicles/car": 6}, "skipped": 0}


def test_a_large_jpeg_is_decoded_at_a_reduced_scale_with_the_same_result(tmp_path):
    y, x = np.mgrid[0:300, 0:400]
    smooth = np.stack([0.6 * x, 0.8 * y, 0.35 * (x + y)], -1).astype(np.uint8)  # gradients, as photos mostly are
    Image.fromarray(smooth).save(tmp_path / "a.jpg", quality=95)
    with Image.open(tmp_path / "a.jpg") as im:
        reference = np.asarray(ImageOps.fit(im.convert("RGB"), (20, 16), Image.BILINEAR)).transpose(2, 0, 1)
    with Image.open(tmp_path / "a.jpg") as im:
        pixels = sources.image_array(im, "a.jpg", "RGB", (16, 20), resize=True)
        assert im.size == (50, 38)  # decoded at 1/8 scale, which still covers the 22x16 that fit needs
    assert pixels.shape == (3, 16, 20) and np.abs(pixels.astype(int) - reference).mean() < 2
