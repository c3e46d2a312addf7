"""NB201Table: known benchmark values, query semantics, errors, and the official-API adapter."""
from __future__ import annotations

import csv
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from searchkit.errors import SearchkitError
from searchkit.paths import find_data
from searchkit.tabular import NB201Table
from searchkit.tabular.nb201 import REQUIRED_COLUMNS

CSV = find_data("nb201/nb201_table.csv")
needs_csv = pytest.mark.skipif(CSV is None, reason="shared/data/nb201/nb201_table.csv not found")

ARCHS = [
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    "|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|",
]


@pytest.fixture(scope="module")
def table() -> NB201Table:
    return NB201Table.load(CSV)


# ---------------------------------------------------------------- the shipped table
@needs_csv
def test_known_values(table: NB201Table) -> None:
    assert len(table) == 15625
    assert table.accuracy(1, "cifar10") == pytest.approx(93.66)
    assert table.accuracy(1, "cifar100") == pytest.approx(70.2933)
    assert table.accuracy(1, "ImageNet16-120") == pytest.approx(44.0333)
    assert table.params(1, "c10") == pytest.approx(0.802426)
    assert table.train_time(1, "c10") == pytest.approx(2169.64)
    assert table.train_time(1, "c10", epochs=12) == pytest.approx(2169.64 * 12 / 200)
    assert table.arch_str(1) == (
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
        "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    )


@needs_csv
def test_best_matches_paper(table: NB201Table) -> None:
    for dataset, expected in [("c10", 94.37), ("c100", 73.51), ("in16", 47.31)]:
        index, acc = table.best(dataset)
        assert acc == pytest.approx(expected, abs=0.01)
        assert table.accuracy(index, dataset) == acc


@needs_csv
def test_split_and_epoch_columns(table: NB201Table) -> None:
    cols = table.columns
    np.testing.assert_array_equal(table.column("c10", "valid"), cols["c10_valid_acc_200ep"])
    np.testing.assert_array_equal(table.column("c10", "test"), cols["c10_test_acc_200ep"])
    np.testing.assert_array_equal(table.column("in16", "valid", 12), cols["in16_valid_acc_12ep"])
    assert table.column("cifar100").shape == (15625,)
    assert table.accuracy(7, "c10", "valid", 12) == cols["c10_valid_acc_12ep"][7]
    with pytest.raises(ValueError):
        table.column("c10")[0] = 0.0  # read-only


@needs_csv
def test_aliases(table: NB201Table) -> None:
    ref = table.accuracy(3, "ImageNet16-120")
    for name in ("in16", "imagenet16-120", "IMAGENET16-120"):
        assert table.accuracy(3, name) == ref
    assert table.accuracy(3, "C10") == table.accuracy(3, "cifar10")
    assert table.accuracy(np.int64(3), "c100") == table.accuracy(3, "cifar100")


@needs_csv
def test_index_arch_round_trip(table: NB201Table) -> None:
    for i in range(len(table)):
        assert table.index_of(table.arch_str(i)) == i


@needs_csv
def test_default_path_is_shared_table() -> None:
    assert len(NB201Table.load()) == 15625


@needs_csv
@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda t: t.accuracy(0, "svhn"), "choose one of: cifar10, cifar100, ImageNet16-120"),
        (lambda t: t.accuracy(0, "cifar10-valid"), "unknown NAS-Bench-201 dataset"),
        (lambda t: t.accuracy(0, "c10", split="train"), "choose one of: test, valid"),
        (lambda t: t.accuracy(0, "c10", epochs=100), "200- and 12-epoch"),
        (lambda t: t.train_time(0, "c10", epochs=1), "200- and 12-epoch"),
        (lambda t: t.column("c10", "valtest"), "split"),
        (lambda t: t.accuracy(15625, "c10"), "out of range"),
        (lambda t: t.arch_str(-1), "out of range"),
        (lambda t: t.params(1.5, "c10"), "must be an integer"),
        (lambda t: t.index_of("|bogus~0|"), "not a NAS-Bench-201 architecture"),
    ],
)
def test_query_errors(table: NB201Table, call, fragment: str) -> None:
    with pytest.raises(SearchkitError, match=fragment.replace("(", r"\(").replace("|", r"\|")):
        call(table)


# ---------------------------------------------------------------- formats and errors
def _write_csv(path: Path, n: int = 3, order=None, drop: str | None = None, bad_cell: bool = False,
               archs=ARCHS) -> Path:
    header = ["index", "arch_str", *REQUIRED_COLUMNS, "c10_n_seeds"]
    header = [h for h in header if h != drop]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for i in order if order is not None else range(n):
            row = {"index": i, "arch_str": archs[i], "c10_n_seeds": 3}
            row.update({c: 10.0 * i + k for k, c in enumerate(REQUIRED_COLUMNS)})
            if bad_cell and i == 1:
                row["c100_params_mb"] = "n/a"
            w.writerow([row[h] for h in header])
    return path


def test_small_csv_reordered_by_index(tmp_path: Path) -> None:
    t = NB201Table.load(_write_csv(tmp_path / "t.csv", order=[2, 0, 1]))
    assert len(t) == 3
    assert [t.arch_str(i) for i in range(3)] == ARCHS
    k = REQUIRED_COLUMNS.index("c10_test_acc_200ep")
    assert t.column("c10").tolist() == [k, 10.0 + k, 20.0 + k]
    assert t.columns["c10_n_seeds"].tolist() == [3, 3, 3]
    assert t.best("c10") == (2, 20.0 + k)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(SearchkitError, match="nope.csv does not exist.*NAS-Bench-201-v1_"):
        NB201Table.load(path)


def test_missing_column(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "t.csv", drop="in16_params_mb")
    with pytest.raises(SearchkitError, match="t.csv: missing columns in16_params_mb"):
        NB201Table.load(path)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"bad_cell": True}, "column c100_params_mb is not all numbers"),
        ({"order": [0, 0, 1]}, "'index' must hold each of 0..2 once"),
        ({"archs": [ARCHS[0]] * 3}, "appears more than once"),
    ],
)
def test_malformed_csv(tmp_path: Path, kwargs: dict, fragment: str) -> None:
    with pytest.raises(SearchkitError, match=fragment):
        NB201Table.load(_write_csv(tmp_path / "t.csv", **kwargs))


def test_ragged_and_binary_files(tmp_path: Path) -> None:
    ragged = _write_csv(tmp_path / "r.csv")
    ragged.write_text(ragged.read_text() + "3,|x~0|\n")
    with pytest.raises(SearchkitError, match="line 5"):
        NB201Table.load(ragged)
    binary = tmp_path / "b.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(SearchkitError, match="expected a CSV with columns 'index', 'arch_str'"):
        NB201Table.load(binary)


# ---------------------------------------------------------------- official API adapter
class FakeAPI:
    """Mimics the NASBench201API / NATS-Bench calls the adapter uses; values encode their origin."""

    DATASET_CODE = {"cifar10-valid": 1, "cifar10": 2, "cifar100": 3, "ImageNet16-120": 4}

    def __init__(self, path: str, verbose: bool = True, missing_12: bool = False) -> None:
        self.path, self.missing_12 = path, missing_12

    def __len__(self) -> int:
        return len(ARCHS)

    def __getitem__(self, index: int) -> str:
        return ARCHS[index]

    def get_more_info(self, index, dataset, iepoch=None, hp="12", is_random=True) -> dict:
        assert is_random is False and iepoch is None
        if self.missing_12 and hp == "12" and dataset != "cifar10-valid":
            raise KeyError(dataset)  # like NAS-Bench-201-v1_0: 12 epochs only on cifar10-valid
        base = 1000 * index + 100 * self.DATASET_CODE[dataset] + int(hp)
        info = {"train-all-time": base + 0.1, "valid-accuracy": base + 0.2}
        if dataset != "cifar10-valid":
            info["test-accuracy"] = base + 0.3
        return info

    def get_cost_info(self, index, dataset, hp="12") -> dict:
        return {"params": 1000 * index + 100 * self.DATASET_CODE[dataset] + 0.5, "flops": 1.0}


def test_pth_adapter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("nas_201_api")
    module.NASBench201API = FakeAPI
    monkeypatch.setitem(sys.modules, "nas_201_api", module)
    path = tmp_path / "NAS-Bench-201-v1_1-096897.pth"
    path.write_bytes(b"")
    t = NB201Table.load(path)
    assert len(t) == 3 and t.index_of(ARCHS[2]) == 2
    assert t.accuracy(2, "c10", "valid") == 2000 + 100 + 200 + 0.2  # cifar10-valid
    assert t.accuracy(2, "c10", "test") == 2000 + 200 + 200 + 0.3  # cifar10
    assert t.accuracy(1, "c100", "valid", 12) == 1000 + 300 + 12 + 0.2
    assert t.accuracy(1, "in16", "test") == 1000 + 400 + 200 + 0.3
    assert t.train_time(1, "c10") == 1000 + 100 + 200 + 0.1  # the cifar10-valid run
    assert t.train_time(1, "c100", 12) == pytest.approx((1000 + 300 + 200 + 0.1) * 12 / 200)
    assert t.params(0, "in16") == 400.5
    assert t.source == str(path)


def test_pth_adapter_missing_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("nas_201_api")
    module.NASBench201API = lambda p, verbose: FakeAPI(p, verbose, missing_12=True)
    monkeypatch.setitem(sys.modules, "nas_201_api", module)
    path = tmp_path / "NAS-Bench-201-v1_0-e61699.pth"
    path.write_bytes(b"")
    t = NB201Table.load(path)
    assert t.accuracy(0, "c10", "valid", 12) == 100 + 12 + 0.2
    assert np.isnan(t.column("c100", "test", 12)).all()
    with pytest.raises(SearchkitError, match="has no value of c100_test_acc_12ep"):
        t.accuracy(0, "c100", "test", 12)


def test_unreadable_pth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(path, verbose):
        raise RuntimeError("PytorchStreamReader failed reading zip archive")

    module = types.ModuleType("nas_201_api")
    module.NASBench201API = broken
    monkeypatch.setitem(sys.modules, "nas_201_api", module)
    path = tmp_path / "NAS-Bench-201-v1_1-096897.pth"
    path.write_bytes(b"not a torch file")
    with pytest.raises(SearchkitError, match="could not be read as a benchmark file.*Pytorch"):
        NB201Table.load(path)


def test_pth_needs_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "nas_201_api", None)  # makes the import fail
    path = tmp_path / "NAS-Bench-201-v1_1-096897.pth"
    path.write_bytes(b"")
    expected = r"needs the nas-bench-201 package: pip install -e '\.\[nb201\]'"
    with pytest.raises(SearchkitError, match=expected):
        NB201Table.load(path)


def test_nats_adapter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def create(path, search_space, fast_mode=False, verbose=True):
        calls.append((search_space, fast_mode))
        return FakeAPI(path, verbose)

    module = types.ModuleType("nats_bench")
    module.create = create
    monkeypatch.setitem(sys.modules, "nats_bench", module)
    path = tmp_path / "NATS-tss-v1_0-3ffb9-simple"
    path.mkdir()
    t = NB201Table.load(path)
    assert calls == [("tss", True)]
    assert t.accuracy(1, "c10", "test") == 1000 + 200 + 200 + 0.3
