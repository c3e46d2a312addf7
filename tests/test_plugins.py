"""The plugin mechanisms (issue 27 ask 3): one registry for every kind (found by discovery, aliases
that warn, one-line errors), renamed modules' old paths, the metric class-attribute guard, the one
metric entry point on the shared-NTK path (CPU fallback), and strategies' needs from the class."""
from __future__ import annotations

import functools
import importlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import searchkit
from searchkit.config import config_from_dict
from searchkit.data import DATASETS
from searchkit.data.base import Batch
from searchkit.errors import SearchkitError
from searchkit.metrics import METRICS, Metric, get_metric, metric, parse_metric, score_metrics
from searchkit.metrics import base as metric_base
from searchkit.metrics.kcc import KCC
from searchkit.metrics.ntk import NTKMetric
from searchkit.paths import find_data
from searchkit.registry import Registry
from searchkit.spaces import SPACES
from searchkit.strategies import STRATEGIES, Strategy, strategy_needs
from searchkit.strategies.base import Needs

pytestmark = pytest.mark.usefixtures("one_thread")

#: every registry, the package it discovers, and names configs use (all must keep working)
KINDS = [
    (METRICS, "searchkit.metrics", ["kcc", "ntk_cond", "ntk_trace_approx", "knas", "linear_regions", "synflow"]),
    (STRATEGIES, "searchkit.strategies", ["random", "evolution", "hnas", "nasi", "warmup", "local", "nsga2", "robot"]),
    (DATASETS, "searchkit.data", ["digits", "cifar10", "cifar100", "cifar10-valid", "imagefolder", "synthetic"]),
    (SPACES, "searchkit.spaces", ["nb201", "darts"]),
]


@pytest.mark.parametrize("registry,package,names", KINDS, ids=lambda k: getattr(k, "kind", None))
def test_every_kind_registers_through_one_discovering_registry(registry, package, names):
    assert type(registry) is Registry and registry.package == package
    assert set(names) <= set(registry.names())
    with pytest.raises(SearchkitError) as err:
        registry.get("no_such_plugin")
    message = str(err.value)
    assert "\n" not in message and f"unknown {registry.kind} 'no_such_plugin'" in message
    assert message.endswith("choose one of: " + ", ".join(registry.names()))


def test_discovery_imports_every_public_module_of_the_package(tmp_path, monkeypatch):
    package = tmp_path / "plugpkg"
    package.mkdir()
    (package / "__init__.py").write_text("from searchkit.registry import Registry\nTHINGS = Registry('thing', 'plugpkg')\n")
    for name in ("alpha", "beta"):
        (package / f"{name}.py").write_text(f"from plugpkg import THINGS\n\n@THINGS.register({name!r})\ndef make():\n"
                                            f"    return {name!r}\n")
    (package / "_helper.py").write_text("raise RuntimeError('a private module is not a plugin')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    things = importlib.import_module("plugpkg").THINGS
    assert things.names() == ["alpha", "beta"] and things.create("beta") == "beta"
    for name in ("plugpkg", "plugpkg.alpha", "plugpkg.beta"):
        monkeypatch.delitem(sys.modules, name)


def test_an_alias_resolves_to_the_new_name_with_a_deprecation_warning(monkeypatch):
    monkeypatch.setattr(METRICS, "_aliases", {"kernel_cc": "kcc"})
    with pytest.warns(DeprecationWarning, match="metric 'kernel_cc' is renamed 'kcc'; write 'kcc'"):
        renamed = parse_metric("kernel_cc:eps=0.01")
    assert isinstance(renamed, KCC) and renamed.key() == get_metric("kcc", eps=0.01).key()
    assert "kernel_cc" in METRICS and "kernel_cc" not in METRICS.names()
    with pytest.raises(ValueError, match="registered twice"):
        METRICS.alias("kernel_cc", "kcc")


@pytest.mark.parametrize("old,names", [
    ("searchkit.metrics.ntk_family", ["NTKCond", "COND_CAP", "NTKTraceApprox", "loss_gradient_sq_norm", "LinearRegions"]),
    ("searchkit.metrics.scoring", ["score_metrics"]),
])
def test_a_renamed_module_still_imports_with_a_deprecation_warning(monkeypatch, old, names):
    monkeypatch.delitem(sys.modules, old, raising=False)
    with pytest.warns(DeprecationWarning, match=f"{old} is renamed: import from searchkit.metrics."):
        module = importlib.import_module(old)
    assert all(hasattr(module, name) for name in names)
    assert getattr(module, "score_metrics", score_metrics) is score_metrics
    assert not Path(searchkit.__file__).with_name("metrics").joinpath(old.rsplit(".", 1)[1] + ".py").exists()


def test_a_metric_may_not_declare_a_class_attribute_as_an_option(monkeypatch):
    with pytest.raises(TypeError, match="'worst' is a class attribute of every metric, not an option; write 'worst = "
                                        r"\.\.\.' without a type annotation"):
        @dataclass
        class Trap(Metric):
            worst: float = 0.0

    monkeypatch.setattr(METRICS, "_factories", dict(METRICS._factories))

    @metric("trap")
    class Fine(Metric):
        width: int = 2
        worst = 0.0
        quantity = "a test quantity"

    assert Fine().options() == {"width": 2} and Fine.worst == 0.0
    with pytest.raises(SearchkitError, match="metric 'trap' has no option 'worst'; its options are: width"):
        parse_metric("trap:worst=5")


def tiny_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 6 * 6, 3))


def test_shared_ntk_scoring_falls_back_to_the_cpu_when_cuda_runs_out_of_memory(monkeypatch):
    """A fake CUDA network: its batch stays on the CPU, and the first NTK raises CUDA's OOM error."""
    gen = torch.Generator().manual_seed(1)
    batch = Batch(torch.randn(12, 3, 6, 6, generator=gen), torch.arange(12) % 3, 3)
    net = tiny_net()
    kcc, trace = get_metric("kcc"), get_metric("ntk_trace")
    alone = {"kcc": kcc(net, batch), "trace": trace(net, batch)}

    real_ntk, calls = NTKMetric.ntk, []

    def ntk_out_of_memory_once(self, net, batch):
        calls.append(next(net.parameters()) is next(iter(original.parameters())))
        if len(calls) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_ntk(self, net, batch)

    original = net
    monkeypatch.setattr(NTKMetric, "ntk", ntk_out_of_memory_once)
    monkeypatch.setattr(metric_base, "network_device", lambda net: torch.device("cuda"))
    monkeypatch.setattr(Batch, "to", lambda self, device: self)
    with pytest.warns(ResourceWarning, match="kcc: out of CUDA memory; scoring this network on the CPU"):
        scores = score_metrics(net, batch, {"kcc": kcc, "trace": trace})
    assert calls == [True, False]  # the original network failed, its CPU copy computed the one shared Theta
    assert scores["kcc"][0] == pytest.approx(alone["kcc"], rel=1e-9)
    assert scores["trace"][0] == pytest.approx(alone["trace"], rel=1e-9)


def test_out_of_memory_on_the_cpu_is_one_line_asking_for_a_smaller_batch(monkeypatch):
    batch = Batch(torch.randn(6, 3, 6, 6), torch.arange(6) % 3, 3)

    def no_memory(self, net, batch):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 TB")

    monkeypatch.setattr(NTKMetric, "ntk", no_memory)
    with pytest.raises(SearchkitError, match="out of memory computing kcc on a batch of 6; lower data.batch_size"):
        score_metrics(tiny_net(), batch, {"kcc": get_metric("kcc")})


def test_a_degenerate_value_on_the_shared_path_becomes_worst(monkeypatch):
    batch = Batch(torch.randn(6, 3, 6, 6), torch.arange(6) % 3, 3)
    monkeypatch.setattr(NTKMetric, "ntk", lambda self, net, batch: torch.full((6, 6), float("nan"), dtype=torch.float64))
    with pytest.warns(metric_base.DegenerateNetworkWarning):
        scores = score_metrics(tiny_net(), batch, {"kcc": get_metric("kcc"), "trace": get_metric("ntk_trace")})
    assert scores["kcc"][0] == KCC.worst and scores["trace"][0] == get_metric("ntk_trace").worst


@pytest.mark.parametrize("name,options,expected", [
    ("evolution", {}, Needs()),
    ("nasi", {}, Needs(training_free=True, gradient=True)),
    ("nsga2", {}, Needs(cost=True)),
    ("nsga2", {"validate": True, "generations": 2}, Needs(cost=True, validation=True, training_free=True)),
    ("hnas", {"ensemble": ["synflow"]}, Needs(("ntk_cond", "synflow"), validation=True, training_free=True)),
    ("warmup", {}, Needs(validation=True, training_free=True)),
    ("robot", {"metrics": ["naswot", "synflow"]}, Needs(("naswot", "synflow"), validation=True, training_free=True)),
])
def test_needs_come_from_the_class_and_options_without_building_a_strategy(monkeypatch, name, options, expected):
    cls = STRATEGIES.get(name)

    @functools.wraps(cls.__init__)  # the same options
    def refuse(self, *args, **kwargs):
        raise AssertionError("a strategy was built to read its needs")

    monkeypatch.setattr(cls, "__init__", refuse)
    assert strategy_needs(name, options) == expected
    with pytest.raises(SearchkitError, match=f"strategy '{name}' has no option 'bogus'"):
        strategy_needs(name, {"bogus": 1})


def test_a_needs_attribute_is_refused_when_the_strategy_class_is_defined():
    with pytest.raises(TypeError, match="strategy class Old: 'needs' is a classmethod of the options"):
        class Old(Strategy):
            needs = Needs(validation=True)


def test_the_benchmark_reads_needs_without_building_strategies(monkeypatch):
    from searchkit.study.benchmark import needs
    from searchkit.study.benchmark_config import StrategyEntry

    monkeypatch.setattr(Strategy, "__init__", lambda *a, **k: pytest.fail("a strategy was built"))
    assert needs(StrategyEntry("warmup", options={"ensemble": ["synflow"]})).extra_metrics == ("synflow",)


@pytest.mark.skipif(find_data("hwnas/hw_nas_bench_c10.csv") is None or find_data("cifar10") is None,
                    reason="needs ../shared/data (HW-NAS-Bench, CIFAR-10)")
def test_the_engine_builds_a_constrained_strategy_once(monkeypatch):
    from searchkit.engine import prepare
    from searchkit.spaces.constrained import FeasibleSpace
    from searchkit.strategies.nsga2 import NSGA2

    real_init, built = NSGA2.__init__, []

    @functools.wraps(real_init)  # the same options
    def counting(self, space, rng, **options):
        built.append(space)
        real_init(self, space, rng, **options)

    monkeypatch.setattr(NSGA2, "__init__", counting)
    cfg = config_from_dict({"data": {"name": "cifar10", "batch_size": 8}, "space": {"name": "nb201", "build": {"C": 2, "N": 1}},
                            "metric": {"name": "params"}, "strategy": {"name": "nsga2", "options": {"population": 4}},
                            "constraint": {"device": "pixel3", "latency_ms": 3.3}, "budget": {"archs": 8},
                            "evaluate": {"method": "table"}})
    setup = prepare(cfg)
    assert len(built) == 1 and isinstance(built[0], FeasibleSpace) and setup.strategy.space is built[0]
    assert setup.needs == Needs(cost=True)


def readme_extending_blocks() -> list[str]:
    """The ```python blocks of the README's "Extending searchkit" section: the metric, then the strategy test."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## Extending searchkit"):readme.index("## Development")]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_readmes_extending_examples_work(monkeypatch):
    metric_block, strategy_block = readme_extending_blocks()
    monkeypatch.setattr(METRICS, "_factories", dict(METRICS._factories))
    exec(compile(metric_block, "README.md (metric)", "exec"), {})
    weight_norm = parse_metric("weight_norm:p=1")
    assert weight_norm.key() == ("weight_norm", '{"p":1.0}') and weight_norm.worst == 0.0
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1, bias=False))
    with torch.no_grad():
        net[0].weight.fill_(-0.5)
    assert weight_norm(net, Batch(torch.zeros(2, 3, 4, 4), torch.tensor([0, 1]), 2)) == pytest.approx((6 * 0.25) ** 0.5)
    with pytest.raises(SearchkitError, match="needs p > 0"):
        parse_metric("weight_norm:p=0")
    namespace: dict = {}
    exec(compile(strategy_block, "README.md (strategy test)", "exec"), namespace)
    namespace["test_climbs_to_the_optimum"]()
