"""HW-NAS-Bench table, cost models, constraints and the feasible-space wrapper."""
from __future__ import annotations

import csv
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import chisquare
from torch import nn

from searchkit.errors import SearchkitError
from searchkit.hardware import AdditiveCost, Constraint, MeasuredLatency, TableCost, measure_latency
from searchkit.paths import find_data
from searchkit.spaces import NB201Space
from searchkit.spaces.base import feature_matrix
from searchkit.spaces.constrained import FeasibleSpace, ProjectionWarning
from searchkit.spaces.darts import DartsSpace
from searchkit.spaces.nb201 import NUM_ARCHS, OPS
from searchkit.tabular import HWNASTable
from searchkit.tabular.hwnas import COST_COLUMNS

HW_CSV = find_data("hwnas/hw_nas_bench_c10.csv")
NB201_CSV = find_data("nb201/nb201_table.csv")
needs_hw = pytest.mark.skipif(HW_CSV is None, reason="shared/data/hwnas not found")

SPACE = NB201Space()
ALL_ARCHS = [SPACE.from_code(c) for c in range(NUM_ARCHS)]
ALL_TEXTS = tuple(SPACE.encode(a) for a in ALL_ARCHS)
#: synthetic per-op costs: a cell's cost is the sum over its edges (conv3x3 dearest)
OP_COST = {"none": 0.0, "skip_connect": 0.1, "avg_pool_3x3": 0.3, "nor_conv_1x1": 0.5, "nor_conv_3x3": 1.0}
SYNTHETIC = np.array([sum(OP_COST[op] for op in a.ops) for a in ALL_ARCHS])


@pytest.fixture(scope="module")
def c10() -> HWNASTable:
    return HWNASTable.load("cifar10")


def fake_table(n: int = 4, dataset: str = "cifar10") -> HWNASTable:
    """n NB201 cells with cost column k = (k + 1) * (index + 1) and an Edge TPU gap at index 1."""
    cols = {c: (k + 1.0) * np.arange(1, n + 1) for k, c in enumerate(COST_COLUMNS)}
    cols["edgetpu_latency"][1] = np.nan
    return HWNASTable(dataset, ALL_TEXTS[:n], cols, "fake")


# ------------------------------------------------------------------ the shipped table
@needs_hw
def test_values_printed_in_the_official_readme(c10: HWNASTable) -> None:
    # HW-NAS-Bench README, query_by_index(0, dataset)
    official = {"edgegpu_latency": 5.807418537139893, "edgegpu_energy": 24.226614330768584,
                "raspi4_latency": 10.481976820010459, "edgetpu_latency": 0.9571811309997429,
                "pixel3_latency": 3.6058499999999998, "eyeriss_latency": 3.645620000000001,
                "eyeriss_energy": 0.6872827644999999, "fpga_latency": 2.57296, "fpga_energy": 18.01072}
    assert len(c10) == 15625
    for column, value in official.items():
        device, quantity = column.split("_")
        assert c10.cost(0, device, quantity) == pytest.approx(value, rel=1e-12)
    assert HWNASTable.load("c100").cost(0, "pixel3") == pytest.approx(5.04007)
    in16 = HWNASTable.load("IMAGENET16-120")
    assert in16.dataset == "ImageNet16-120"
    assert in16.cost(0, "fpga") == pytest.approx(0.64912)
    assert in16.cost(0, "raspi4") == pytest.approx(2.973176879895618)


@needs_hw
@pytest.mark.skipif(NB201_CSV is None, reason="shared/data/nb201 not found")
def test_rows_are_the_nb201_index_order(c10: HWNASTable) -> None:
    from searchkit.tabular import NB201Table

    nb201 = NB201Table.load(NB201_CSV)
    assert c10.arch_strs == tuple(nb201.arch_str(i) for i in range(len(c10)))


@needs_hw
def test_lookup_by_index_string_and_vectorised(c10: HWNASTable) -> None:
    arch = c10.arch_str(1234)
    assert c10.index_of(arch) == 1234
    assert c10.cost(arch, "fpga", "energy") == c10.cost(1234, "fpga", "energy") == c10.column("fpga", "energy")[1234]
    cost = TableCost(c10, "raspi4")
    picks = [c10.arch_str(i) for i in (5, 0, 9000)]
    np.testing.assert_array_equal(cost.costs(picks), c10.column("raspi4")[[5, 0, 9000]])
    assert cost.name == "raspi4_latency" and cost.unit == "ms"
    assert TableCost(c10, "eyeriss", "energy").unit == "mJ"
    with pytest.raises(ValueError):
        c10.column("pixel3")[0] = 1.0  # read-only


@needs_hw
def test_edge_tpu_gaps_are_nan_and_a_clear_error(c10: HWNASTable) -> None:
    gaps = np.isnan(c10.column("edgetpu"))
    assert gaps.sum() == 4699
    for column in COST_COLUMNS:
        if column != "edgetpu_latency":
            assert not np.isnan(c10.columns[column]).any(), column
    i = int(np.flatnonzero(gaps)[0])
    with pytest.raises(SearchkitError) as err:
        c10.cost(i, "edgetpu")
    message = str(err.value)
    assert f"no edgetpu latency for NB201 architecture {i} ({c10.arch_str(i)};" in message
    assert "4,699 of 15,625" in message
    assert message.endswith("measured on: edgegpu, raspi4, pixel3, eyeriss, fpga")
    cost = TableCost(c10, "edgetpu")
    with pytest.raises(SearchkitError, match=f"architecture {i} "):
        cost.costs([c10.arch_str(0), c10.arch_str(i)])
    assert cost.costs([c10.arch_str(0)])[0] == pytest.approx(0.9571811309997429)


def test_unknown_device_and_quantity_list_what_exists() -> None:
    table = fake_table()
    with pytest.raises(SearchkitError, match=r"unknown HW-NAS-Bench device 'tpu'; choose one of: edgegpu "
                                             r"\(latency, energy\), raspi4 \(latency\)"):
        table.column("tpu")
    with pytest.raises(SearchkitError, match=r"no energy on pixel3 \(only latency\); devices with energy: "
                                             r"edgegpu, eyeriss, fpga"):
        table.cost(0, "pixel3", "energy")
    with pytest.raises(SearchkitError, match="not a NAS-Bench-201 architecture string"):
        table.index_of("|conv~0|")
    with pytest.raises(SearchkitError, match="out of range"):
        table.cost(4, "fpga")


# ------------------------------------------------------------------ the official pickle and CSV inputs
def official_layout(tables: dict[str, HWNASTable], as_dict: bool = False) -> dict:
    """The layout of HW-NAS-Bench-v1_0.pickle: numpy columns with -1 where not measured."""
    out = {}
    for dataset, table in tables.items():
        entry: dict = {c: np.nan_to_num(table.columns[c], nan=-1.0) for c in COST_COLUMNS}
        entry["eyeriss_arithmetic_intensity"] = np.arange(len(table), dtype=np.float64)
        configs = [{"name": "infer.tiny", "C": 16, "N": 5, "arch_str": s, "num_classes": 10} for s in table.arch_strs]
        entry["config"] = dict(enumerate(configs)) if as_dict else configs
        if as_dict:
            entry["fpga_latency"] = {i: float(v) for i, v in enumerate(entry["fpga_latency"])}
        out[dataset] = entry
    return {"nasbench201": out, "fbnet": {"edgegpu_latency": {"ConvNorm_x": 1.0}}}


@pytest.mark.parametrize("as_dict", [False, True])
def test_official_pickle_layout(tmp_path: Path, as_dict: bool) -> None:
    tables = {"cifar10": fake_table(5), "ImageNet16-120": fake_table(5, "ImageNet16-120")}
    path = tmp_path / "HW-NAS-Bench-v1_0.pickle"
    path.write_bytes(pickle.dumps(official_layout(tables, as_dict)))
    loaded = HWNASTable.load("in16", path)
    assert loaded.dataset == "ImageNet16-120" and loaded.arch_strs == ALL_TEXTS[:5]
    for column in COST_COLUMNS:
        np.testing.assert_array_equal(loaded.columns[column], tables["ImageNet16-120"].columns[column])
    assert np.isnan(loaded.column("edgetpu")[1])  # the official -1
    np.testing.assert_array_equal(loaded.columns["eyeriss_arithmetic_intensity"], np.arange(5.0))
    with pytest.raises(SearchkitError, match="no edgetpu latency for NB201 architecture 1"):
        loaded.cost(1, "edgetpu")
    with pytest.raises(SearchkitError, match="lacks nasbench201/cifar100/config"):
        HWNASTable.load("cifar100", path)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickle_with_foreign_objects_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.pickle"
    path.write_bytes(pickle.dumps({"nasbench201": {"cifar10": {"config": [_Evil()]}}}))
    with pytest.raises(SearchkitError, match="refusing to load builtins.print"):
        HWNASTable.load("c10", path)
    path.write_bytes(b"not a pickle")
    with pytest.raises(SearchkitError, match="could not be read as a pickle"):
        HWNASTable.load("c10", path)


def write_csv(path: Path, table: HWNASTable, drop: str | None = None, order: list[int] | None = None) -> Path:
    header = ["index", "arch_str", *(c for c in COST_COLUMNS if c != drop)]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for i in order or range(len(table)):
            values = ["" if np.isnan(table.columns[c][i]) else repr(float(table.columns[c][i])) for c in header[2:]]
            writer.writerow([i, table.arch_strs[i], *values])
    return path


def test_csv_round_trip_and_errors(tmp_path: Path) -> None:
    table = fake_table(6)
    loaded = HWNASTable.load("c10", write_csv(tmp_path / "t.csv", table, order=[3, 0, 5, 1, 2, 4]))
    assert loaded.arch_strs == table.arch_strs
    for column in COST_COLUMNS:
        np.testing.assert_array_equal(loaded.columns[column], table.columns[column])
    with pytest.raises(SearchkitError, match="missing columns fpga_energy"):
        HWNASTable.load("c10", write_csv(tmp_path / "u.csv", table, drop="fpga_energy"))
    with pytest.raises(SearchkitError, match="does not exist"):
        HWNASTable.load("c10", tmp_path / "nope.csv")
    with pytest.raises(SearchkitError, match="unknown NAS-Bench-201 dataset 'mnist'"):
        HWNASTable.load("mnist", tmp_path / "t.csv")


def test_negative_values_mean_not_measured() -> None:
    cols = {c: np.ones(2) for c in COST_COLUMNS}
    cols["edgetpu_latency"] = np.array([-1.0, 0.5])
    table = HWNASTable("c10", ALL_TEXTS[:2], cols, "fake")
    assert np.isnan(table.column("edgetpu")[0]) and table.cost(1, "edgetpu") == 0.5
    with pytest.raises(SearchkitError, match="appears more than once"):
        HWNASTable("c10", [ALL_TEXTS[0]] * 2, cols, "fake")


# ------------------------------------------------------------------ measured latency
class _Probe(nn.Module):
    """Records, per forward, the thread count, eval flag and inference mode it ran under."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, bool, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((torch.get_num_threads(), self.training, torch.is_inference_mode_enabled()))
        return x


def test_measure_latency_is_the_median_after_warmup() -> None:
    ticks = iter([0.0, 0.005, 1.0, 1.010, 2.0, 2.001])  # timed runs of 5, 10 and 1 ms
    net = _Probe().train()
    threads = torch.get_num_threads()
    asked = threads + 1  # differs from the process's count, whatever the test runner set
    ms = measure_latency(net, torch.zeros(1, 3, 4, 4), warmup=2, repeats=3, threads=asked, clock=lambda: next(ticks))
    assert ms == pytest.approx(5.0)
    assert net.calls == [(asked, False, True)] * 5  # 2 warm-up + 3 timed, the threads asked, eval, inference mode
    assert net.training and torch.get_num_threads() == threads
    with pytest.raises(SearchkitError, match="repeats >= 1"):
        measure_latency(net, torch.zeros(1), repeats=0)


class _CountingSpace(NB201Space):
    def __init__(self) -> None:
        super().__init__()
        self.built = 0

    def build(self, arch, num_classes, **kwargs):
        self.built += 1
        return super().build(arch, num_classes, **kwargs)


def test_measured_latency_builds_once_per_architecture() -> None:
    space = _CountingSpace()
    model = MeasuredLatency(space, num_classes=3, input_shape=(3, 8, 8), warmup=1, repeats=2,
                            build={"C": 4, "N": 1})
    texts = [SPACE.encode(ALL_ARCHS[7]), SPACE.encode(ALL_ARCHS[9000])]
    values = model.costs(texts + texts[:1])
    assert values.shape == (3,) and np.all(values > 0) and values[0] == values[2]
    assert space.built == 2 and model.cost(texts[1]) == values[1] and space.built == 2
    assert (model.device, model.quantity, model.unit, model.name) == ("cpu", "latency", "ms", "cpu_latency")


def test_space_cost_model_routes_and_refuses() -> None:
    assert isinstance(DartsSpace().cost_model("cpu", "latency"), MeasuredLatency)
    with pytest.raises(SearchkitError, match="only latency can be measured on cpu"):
        SPACE.cost_model("cpu", "energy")
    with pytest.raises(SearchkitError, match="the darts space has no hardware cost table \\(device 'pixel3'\\); use device: cpu"):
        DartsSpace().cost_model("pixel3", "latency")
    with pytest.raises(SearchkitError, match="not 'digits'; use device: cpu"):
        SPACE.cost_model("pixel3", "latency", dataset="digits")
    with pytest.raises(SearchkitError, match="no energy on raspi4"):
        SPACE.cost_model("raspi4", "energy", "cifar10")


# ------------------------------------------------------------------ constraints
def test_constraint_parsing_and_round_trip() -> None:
    c = Constraint.parse({"device": "pixel3", "latency_ms": 5})
    assert (c.device, c.quantity, c.limit, c.unit, c.key) == ("pixel3", "latency", 5.0, "ms", "latency_ms")
    assert Constraint.parse(c.as_mapping()) == c and str(c) == "pixel3 latency <= 5 ms"
    e = Constraint.parse({"device": "FPGA", "energy_mj": 1.2})
    assert (e.device, e.quantity, e.limit, e.key) == ("fpga", "energy", 1.2, "energy_mj")
    assert Constraint.parse({"device": "cpu", "latency_ms": 3}).device == "cpu"


@pytest.mark.parametrize("spec, message", [
    ({"device": "pixel3", "latency_ms": 5, "energy_mj": 1}, "both latency_ms and energy_mj"),
    ({"device": "pixel3"}, "no latency_ms or energy_mj"),
    ({"device": "pixel3", "latency": 5}, "unknown constraint key.*latency; allowed: device, latency_ms, energy_mj"),
    ({"latency_ms": 5}, "needs a device"),
    ({"device": "pixel3", "latency_ms": 0}, "latency_ms must be a positive number, got 0"),
    ({"device": "pixel3", "latency_ms": -2.0}, "positive number"),
    ({"device": "pixel3", "latency_ms": float("nan")}, "positive number"),
    ({"device": "pixel3", "latency_ms": float("inf")}, "positive number"),
    ({"device": "pixel3", "latency_ms": "5"}, "positive number"),
    ({"device": "pixel3", "latency_ms": True}, "positive number"),
    ({"device": "tpu", "latency_ms": 1}, "unknown constraint device 'tpu'; choose one of: cpu .*, edgegpu"),
    ({"device": "pixel3", "energy_mj": 1}, "no energy on pixel3"),
    ({"device": "cpu", "energy_mj": 1}, "energy cannot be measured on this machine's cpu"),
    ([("device", "cpu")], "must be a mapping"),
])
def test_constraint_errors(spec, message: str) -> None:
    with pytest.raises(SearchkitError, match=message):
        Constraint.parse(spec)


def test_feasibility_and_infeasible_budget_message() -> None:
    c = Constraint.of("pixel3", "latency", 2.0)
    np.testing.assert_array_equal(c.feasible(np.array([1.0, 2.0, 2.5, np.nan])), [True, True, False, False])
    assert c.satisfied(2.0) and not c.satisfied(float("nan"))
    with pytest.raises(SearchkitError) as err:
        Constraint.of("pixel3", "latency", 0.5).require_achievable(np.array([np.nan, 1.23, 4.0]))
    assert str(err.value) == ("infeasible constraint latency_ms: 0.5: no NB201 cell runs within 0.5 ms on pixel3; "
                              "the fastest takes 1.23 ms")
    with pytest.raises(SearchkitError, match="no NB201 cell uses at most 0.1 mJ on fpga; the most frugal uses 7.9 mJ"):
        Constraint.of("fpga", "energy", 0.1).require_achievable(np.array([7.9, 9.0]))


@needs_hw
def test_real_budget_below_the_fastest_cell(c10: HWNASTable) -> None:
    for device in ("pixel3", "edgegpu", "fpga"):
        fastest = float(np.nanmin(c10.column(device)))
        with pytest.raises(SearchkitError, match=f"the fastest takes {fastest:.4g} ms"):
            FeasibleSpace(SPACE, TableCost(c10, device), Constraint.of(device, "latency", fastest * 0.99))
        assert len(FeasibleSpace(SPACE, TableCost(c10, device), Constraint.of(device, "latency", fastest)).members) >= 1


# ------------------------------------------------------------------ the feasible space
class SyntheticCost:
    """Costs of all NB201 cells from ``values`` (default: the sum of OP_COST over the edges, "ms"),
    without enumeration, like a measured model; counts cost calls."""

    device, quantity, unit, name = "pixel3", "latency", "ms", "pixel3_latency"

    def __init__(self, values: np.ndarray = SYNTHETIC) -> None:
        self.values = values
        self.lookup = dict(zip(ALL_TEXTS, values))
        self.calls = 0

    def cost(self, text: str) -> float:
        self.calls += 1
        return float(self.lookup[text])

    def costs(self, texts):
        return np.array([self.cost(t) for t in texts])


class SyntheticTable(SyntheticCost):
    """The same, enumerable like a table."""

    def all_costs(self):
        return ALL_TEXTS, self.values


def hamming(a, b) -> int:
    return sum(x != y for x, y in zip(a.ops, b.ops))


def test_table_feasible_space_never_leaves_the_budget() -> None:
    limit = 1.5
    space = FeasibleSpace(SPACE, SyntheticTable(), Constraint.of("pixel3", "latency", limit))
    assert len(space.members) == int((SYNTHETIC <= limit).sum())
    rng = np.random.default_rng(0)
    samples = [space.sample(rng) for _ in range(3000)]
    assert max(SYNTHETIC[SPACE.code(a)] for a in samples) <= limit
    arch = samples[0]
    for _ in range(2000):
        child = space.mutate(arch, rng)
        assert SYNTHETIC[SPACE.code(child)] <= limit
        assert hamming(arch, child) == 1  # every feasible cell here has a feasible one-edge neighbour
        arch = child
    assert all(SYNTHETIC[SPACE.code(n)] <= limit for n in space.neighbours(arch))
    assert len(space.neighbours(arch)) < len(SPACE.neighbours(arch))


def test_table_sampling_is_uniform_over_the_feasible_set() -> None:
    space = FeasibleSpace(SPACE, SyntheticTable(), Constraint.of("pixel3", "latency", 0.3))
    rng = np.random.default_rng(3)
    position = {a: i for i, a in enumerate(space.members)}
    counts = np.bincount([position[space.sample(rng)] for _ in range(100 * len(space.members))],
                         minlength=len(space.members))
    assert counts.min() > 0 and chisquare(counts).pvalue > 1e-3


def test_table_feasible_space_delegates_the_rest() -> None:
    space = FeasibleSpace(SPACE, SyntheticTable(), Constraint.of("pixel3", "latency", 1.0))
    arch = ALL_ARCHS[0]
    assert space.name == "nb201" and space.default_dataset == SPACE.default_dataset
    assert space.decode(space.encode(arch)) == arch and space.code(arch) == 0
    assert isinstance(space.build(arch, 10, C=4, N=1), nn.Module)
    assert "FeasibleSpace(nb201, pixel3 latency <= 1 ms" in repr(space)


def test_isolated_parent_mutates_to_the_nearest_feasible_cell() -> None:
    # only two feasible cells, 3 edges apart: no feasible one-edge neighbour exists
    a, b = ALL_ARCHS[0], SPACE.decode("|skip_connect~0|+|skip_connect~0|skip_connect~1|+|none~0|none~1|none~2|")
    values = np.full(NUM_ARCHS, 9.0)
    values[[SPACE.code(a), SPACE.code(b)]] = 1.0
    space = FeasibleSpace(SPACE, SyntheticTable(values), Constraint.of("pixel3", "latency", 1.0))
    rng = np.random.default_rng(1)
    assert all(space.mutate(a, rng) == b for _ in range(20)) and all(space.mutate(b, rng) == a for _ in range(20))
    far = SPACE.decode("|nor_conv_3x3~0|+|skip_connect~0|skip_connect~1|+|none~0|none~1|none~2|")
    assert space.project(far, rng) == b and space.project(a, rng) == a


def test_single_feasible_cell_and_infeasible_budget() -> None:
    values = np.full(NUM_ARCHS, 9.0)
    values[5] = np.nan  # unmeasured: never feasible
    values[7] = 2.0
    space = FeasibleSpace(SPACE, SyntheticTable(values), Constraint.of("pixel3", "latency", 2.0))
    rng = np.random.default_rng(0)
    assert space.members == [ALL_ARCHS[7]] and space.mutate(ALL_ARCHS[7], rng) == ALL_ARCHS[7]
    with pytest.raises(SearchkitError, match="no NB201 cell runs within 1.5 ms on pixel3; the fastest takes 2 ms"):
        FeasibleSpace(SPACE, SyntheticTable(values), Constraint.of("pixel3", "latency", 1.5))
    with pytest.raises(SearchkitError, match="the cost model gives pixel3 latency, the constraint is on fpga latency"):
        FeasibleSpace(SPACE, SyntheticTable(values), Constraint.of("fpga", "latency", 1.5))


def test_measured_feasible_space_rejection_samples() -> None:
    cost = SyntheticCost()
    space = FeasibleSpace(SPACE, cost, Constraint.of("pixel3", "latency", 1.0), max_tries=500)
    assert space.members is None
    rng = np.random.default_rng(2)
    arch = space.sample(rng)
    for _ in range(300):
        assert SYNTHETIC[SPACE.code(arch)] <= 1.0
        arch = space.mutate(arch, rng)
    assert cost.calls > 0
    tight = FeasibleSpace(SPACE, SyntheticCost(), Constraint.of("pixel3", "latency", 0.05), max_tries=50)
    with pytest.raises(SearchkitError, match=r"no NB201 cell among 50 samples meets pixel3 latency <= 0.05 ms; "
                                             r"the cheapest sampled has latency 0\.\d+ ms; raise latency_ms"):
        tight.sample(rng)
    with pytest.raises(SearchkitError, match="needs a table cost model"):
        space.project(ALL_ARCHS[-1], rng)



class _ListedCost:
    """pixel3 latency (ms) of the architectures' texts listed in ``values``."""

    device, quantity, unit, name = "pixel3", "latency", "ms", "pixel3_latency"

    def __init__(self, values: dict[str, float]) -> None:
        self.values = values

    def cost(self, text: str) -> float:
        return self.values[text]

    def costs(self, texts):
        return np.array([self.values[t] for t in texts])


def test_darts_projection_is_the_nearest_in_features() -> None:
    """DARTS offers features, so the nearest feasible genotype is the one fewest (op, input)
    coordinates away, not a uniform pick."""
    darts = DartsSpace()
    rng = np.random.default_rng(3)
    arch = darts.sample(rng)
    near, far = darts.neighbours(arch)[0], darts.sample(rng)
    distance = lambda a: sum(x != y for x, y in zip(darts.features(a), darts.features(arch)))  # noqa: E731
    assert distance(near) == 1 and distance(far) > 1
    cost = _ListedCost({darts.encode(arch): 9.0, darts.encode(near): 1.0, darts.encode(far): 1.0})
    space = FeasibleSpace(darts, cost, Constraint.of("pixel3", "latency", 2.0), candidates=[arch, near, far])
    assert space.projects and set(space.members) == {near, far}
    assert all(space.project(arch, rng) == near for _ in range(20))
    assert space.project(far, rng) == far


class _Featureless(NB201Space):
    features = None  # type: ignore[assignment]


def test_projection_without_features_is_uniform_and_says_so() -> None:
    space = FeasibleSpace(_Featureless(), SyntheticTable(), Constraint.of("pixel3", "latency", 0.2))
    assert not space.projects
    rng = np.random.default_rng(0)
    with pytest.warns(ProjectionWarning, match="the nb201 space offers no features: the nearest feasible architecture "
                                               "is a uniform choice"):
        picks = {space.nearest(ALL_ARCHS[-1], rng) for _ in range(200)}
    assert picks == set(space.members) and len(picks) > 1


@needs_hw
def test_real_feasible_space_excludes_edge_tpu_gaps(c10: HWNASTable) -> None:
    cost = TableCost(c10, "edgetpu")
    space = FeasibleSpace(SPACE, cost, Constraint.of("edgetpu", "latency", 1.0))
    values = cost.costs([SPACE.encode(a) for a in space.members])  # raises on any gap
    assert values.max() <= 1.0
    expected = np.nansum(c10.column("edgetpu") <= 1.0)
    assert len(space.members) == expected
    rng = np.random.default_rng(0)
    arch = space.sample(rng)
    for _ in range(500):
        arch = space.mutate(arch, rng)
        assert cost.cost(SPACE.encode(arch)) <= 1.0



# ------------------------------------------------------------------ the additive cost model
def test_additive_fit_recovers_an_additive_cost() -> None:
    codes = feature_matrix(SPACE, ALL_ARCHS)
    costs = SYNTHETIC.copy()
    costs[::7] = np.nan  # unmeasured cells are left out of the fit
    model = AdditiveCost.fit(codes, costs, num_ops=5)
    assert model.r2 == pytest.approx(1.0) and model.max_error < 1e-9
    np.testing.assert_allclose(model.predict(codes), SYNTHETIC, atol=1e-9)
    probs = torch.zeros(6, 5, dtype=torch.float64, requires_grad=True)
    with torch.no_grad():
        probs[np.arange(6), codes[123]] = 1.0
    value = model.expected(probs)
    assert value.item() == pytest.approx(SYNTHETIC[123])
    value.backward()
    np.testing.assert_allclose(probs.grad.numpy(), model.weights)
    uniform = torch.full((6, 5), 0.2, dtype=torch.float64)
    assert model.expected(uniform).item() == pytest.approx(SYNTHETIC.mean())  # uniform law = mean over cells


def test_additive_fit_reports_a_non_additive_cost() -> None:
    codes = feature_matrix(SPACE, ALL_ARCHS)
    interaction = (codes[:, 0] == 3) & (codes[:, 5] == 3)  # both ends conv3x3: an extra cost
    model = AdditiveCost.fit(codes, SYNTHETIC + 5.0 * interaction, num_ops=5)
    assert 0.0 < model.r2 < 0.99 and model.max_error > 1.0
    with pytest.raises(SearchkitError, match="2\\+ measured"):
        AdditiveCost.fit(codes[:3], np.array([1.0, np.nan, np.nan]), num_ops=5)


@needs_hw
def test_fpga_and_eyeriss_columns_are_exactly_additive(c10: HWNASTable) -> None:
    codes = feature_matrix(SPACE, [SPACE.decode(t) for t in c10.arch_strs])
    for column in ("fpga_latency", "fpga_energy", "eyeriss_latency", "eyeriss_energy"):
        model = AdditiveCost.fit(codes, c10.columns[column], num_ops=5)
        assert model.max_error < 1e-6, column
    assert AdditiveCost.fit(codes, c10.column("pixel3"), num_ops=5).r2 < 0.95  # a measured phone is not


class _Pool(NB201Space):
    """NB201 restricted to ``members`` (like the benchmark's PoolSpace): a mutant outside the pool
    is replaced by a uniform member; no ``neighbours``."""

    neighbours = None  # type: ignore[assignment]
    members = None  # type: ignore[assignment]  # a plain attribute here (NB201Space's is a property)

    def __init__(self, members: list) -> None:
        super().__init__()
        self.members = members

    def sample(self, rng):
        return self.members[int(rng.integers(len(self.members)))]

    def mutate(self, arch, rng):
        child = super().mutate(arch, rng)
        return child if child in self.members else self.sample(rng)


def test_feasible_space_over_a_pool_keeps_to_the_pool() -> None:
    rng = np.random.default_rng(4)
    pool = list({SPACE.sample(rng) for _ in range(300)})
    space = FeasibleSpace(_Pool(pool), SyntheticTable(), Constraint.of("pixel3", "latency", 2.0))
    expected = {a for a in pool if SYNTHETIC[SPACE.code(a)] <= 2.0}
    assert set(space.members) == expected and len(expected) < len(pool)
    arch = space.sample(rng)
    for _ in range(300):
        arch = space.mutate(arch, rng)
        assert arch in expected
    assert {space.sample(rng) for _ in range(2000)} == expected
    measured = FeasibleSpace(SPACE, SyntheticCost(), Constraint.of("pixel3", "latency", 2.0), candidates=pool)
    assert set(measured.members) == expected
    with pytest.raises(SearchkitError, match="no NB201 cell of the 2 candidates runs within 0.5 ms"):
        FeasibleSpace(SPACE, SyntheticTable(), Constraint.of("pixel3", "latency", 0.5),
                      candidates=[ALL_ARCHS[-1], ALL_ARCHS[-2]])


def test_most_likely_is_the_constrained_argmax() -> None:
    space = FeasibleSpace(SPACE, SyntheticTable(), Constraint.of("pixel3", "latency", 1.5))
    rng = np.random.default_rng(6)
    log_probs = np.log(rng.dirichlet(np.ones(5), size=6))
    best = space.most_likely(log_probs, OPS)
    codes = feature_matrix(SPACE, space.members)
    brute = space.members[int(np.argmax([log_probs[np.arange(6), c].sum() for c in codes]))]
    assert best == brute and SYNTHETIC[SPACE.code(best)] <= 1.5
    favourite = np.full((6, 5), -10.0)
    favourite[:, OPS.index("nor_conv_3x3")] = 0.0  # all-conv3x3 (cost 6) is infeasible
    favourite[:, OPS.index("skip_connect")] = -1.0
    chosen = space.most_likely(favourite, OPS)
    assert chosen.ops.count("nor_conv_3x3") == 1 and chosen.ops.count("skip_connect") == 5  # 1.0 + 0.5 <= 1.5
    with pytest.raises(SearchkitError, match="not among ops"):
        space.most_likely(favourite, OPS[:4])
