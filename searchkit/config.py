"""Typed run configuration: YAML presets plus dotted ``key=value`` overrides from the CLI.

Every key is checked: an unknown key, a value of the wrong type or a missing file is a
:class:`SearchkitError` that names it. ``options`` mappings are free-form here and checked by
the factory they are passed to (a metric's, a strategy's, a dataset's).
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from searchkit.errors import SearchkitError
from searchkit.options import check_value


@dataclass
class DataConfig:
    """The dataset and its seeded scoring batch (``batch_size`` examples of ``split``).

    ``target``: the tabular benchmark's dataset the search is for, when it is not ``name``: table
    validation answers from its ``validate.epochs`` validation column, table evaluation reads its
    test column and hardware costs are its input size's, while training-free scores stay those of
    ``name``'s images (e.g. ``target: cifar100`` searched with CIFAR-10 scoring batches, where no
    CIFAR-100 images are held). null: ``name`` itself.
    """

    name: str = "digits"
    target: str | None = None
    root: str | None = None
    batch_size: int = 64
    split: str = "train"
    seed: int = 0
    options: dict = field(default_factory=dict)


@dataclass
class ScoringConfig:
    """How a training-free score is drawn. ``draws``: the mean over this many draws of the network's
    initialisation and the scoring batch (draw d: init seed ``init_seed + d``, data seed
    ``data.seed + d``; draw 0 is the single-draw score, so its stored scores are reused; each
    draw is stored on its own, so raising it later only computes the new draws). Applies to every
    metric (:mod:`searchkit.scoring`)."""

    draws: int = 1


@dataclass
class SpaceConfig:
    """The search space; ``build`` holds network options (e.g. NB201's C and N), ``options`` the
    space's own (e.g. NB201's ``exclude_degenerate``, ``distinct``; a search starts from the
    space's ``search_defaults``)."""

    name: str = "nb201"
    build: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)


#: The pseudo-metric of a training-based run (``metric.name: validation``): every score query is
#: answered by the validate oracle (e.g. regularized evolution on 12-epoch validation accuracy, the
#: benchmark's REA baseline). The one definition; the engine and the benchmark import it.
VALIDATION = "validation"


@dataclass
class MetricConfig:
    """The training-free fitness and its options (e.g. ``eps`` for KCC; :data:`VALIDATION` for a
    training-based run)."""

    name: str = "kcc"
    options: dict = field(default_factory=dict)


@dataclass
class StrategyConfig:
    """The search strategy and its options (e.g. ``population`` for evolution)."""

    name: str = "evolution"
    options: dict = field(default_factory=dict)


@dataclass
class BudgetConfig:
    """When the search stops, whichever limit comes first (null: no limit of that kind).

    ``archs``: oracle queries answered (training-free scores and validations, repeats included);
    ``seconds``: measured wall time of the training-free work; ``simulated_seconds``: training
    time charged for validations (the table's recorded time, or the measured training time);
    ``wall_seconds``: the elapsed wall-clock time of the whole search (the plan's measurements,
    scoring, validation training and the strategy's own work; the final training is separate):
    a query whose estimated cost would overrun it is not started, and a strategy sizes its
    table-free defaults from it (:mod:`searchkit.plan`). A config that sets ``wall_seconds`` and
    not ``archs`` has no query limit (the default 100 queries would cut a wall budget short).
    """

    archs: int | None = 100
    seconds: float | None = None
    simulated_seconds: float | None = None
    wall_seconds: float | None = None


@dataclass
class EvaluateConfig:
    """How the selected architecture's final accuracy is obtained.

    ``method``: ``auto`` (table lookup when the dataset is one of NAS-Bench-201's and the table
    is found, else training), ``table``, ``train`` or ``none``. ``protocol``: the training preset's
    name (:data:`searchkit.train.trainer.PROTOCOLS`); ``overrides``: its fields to replace, e.g.
    ``{max_train: 1000, network: {C: 8}}`` (``network`` is merged into the preset's);
    ``epochs`` overrides the epoch count (and wins over ``overrides``).
    """

    method: str = "auto"
    protocol: str = "nb201"
    epochs: int | None = None
    seed: int = 0
    overrides: dict = field(default_factory=dict)


@dataclass
class ValidateConfig:
    """The expensive oracle hybrid strategies query (docs/design.md, "validate(arch)").

    ``method``: ``auto`` (the NB201 table when the dataset is one of its own and the table is
    found, else training), ``table`` (``epochs``-epoch validation accuracy, charged the table's
    training time) or ``train`` (real training under ``evaluate.protocol`` for ``epochs``
    epochs, charged its measured time; the dataset needs a validation split).
    """

    method: str = "auto"
    epochs: int = 12


@dataclass
class HardwareConfig:
    """The hardware cost of architectures (docs: README "Hardware-aware search").

    ``device``: where the cost is taken: a HW-NAS-Bench device (``pixel3``, ``edgegpu``, ``raspi4``,
    ``edgetpu``, ``eyeriss``, ``fpga``; NB201 cells) or ``cpu`` (latency of the built network
    measured on this machine, any space); null: the constraint's device, or no cost at all.
    ``quantity``: ``latency`` (ms) or ``energy`` (mJ); null: the constraint's, else latency.
    ``table``: the user's HW-NAS-Bench CSV or official ``HW-NAS-Bench-v1_0.pickle`` (null:
    ``../shared/data/hwnas``). ``batch_size``, ``warmup``, ``repeats``, ``threads``: how ``cpu``
    latency is measured (the median of ``repeats`` timed forward passes after ``warmup`` untimed ones).
    """

    device: str | None = None
    quantity: str | None = None
    table: str | None = None
    batch_size: int = 1
    warmup: int = 5
    repeats: int = 20
    threads: int = 1


@dataclass
class RunConfig:
    """One search run (see configs/default.yaml for a commented example).

    ``benchmark`` is read only by ``searchkit benchmark`` (:mod:`searchkit.study.benchmark`): a
    benchmark file is a run config whose settings every run shares, plus that section.
    ``store``: the SQLite score store to read and write (:class:`searchkit.store.ScoreStore`),
    e.g. one shared by many runs; null: ``scores.db`` in the run's output directory.
    ``constraint``: a hardware budget every selected (and queried) architecture meets, e.g.
    ``{device: pixel3, latency_ms: 5}`` or ``{device: edgegpu, energy_mj: 20}``
    (:meth:`searchkit.hardware.Constraint.parse`); ``hardware``: where costs come from.
    """

    name: str = "default"
    seed: int = 0
    init_seed: int | None = None
    device: str = "auto"
    table: str | None = None
    store: str | None = None
    data: DataConfig = field(default_factory=DataConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    space: SpaceConfig = field(default_factory=SpaceConfig)
    metric: MetricConfig = field(default_factory=MetricConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    validate: ValidateConfig = field(default_factory=ValidateConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    constraint: dict | None = None
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    benchmark: dict = field(default_factory=dict)

    @property
    def network_seed(self) -> int:
        """The seed networks are initialised from for scoring: ``init_seed``, else ``seed``."""
        return self.seed if self.init_seed is None else self.init_seed

    def to_dict(self) -> dict:
        return asdict(self)


def build_section(cls: type, data: Any, prefix: str) -> Any:
    """An instance of the config dataclass ``cls`` from a mapping, every key and type checked
    (``prefix`` names the section in error messages, e.g. ``"budget."``)."""
    if not isinstance(data, dict):
        raise SearchkitError(f"config section {prefix.rstrip('.') or 'top level'!r} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if key not in fields:
            raise SearchkitError(f"unknown config key {path!r}; valid keys here: {', '.join(fields)}")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = build_section(hint, value, path + ".")
        else:
            kwargs[key] = check_value(f"config key {path!r}", value, hint)
    return cls(**kwargs)


def _merge(base: dict, update: dict) -> dict:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _split_override(text: str) -> tuple[list[str], Any, bool]:
    """``"a.b=value"`` -> (``["a", "b"]``, the value parsed as YAML, False); ``"a.b:=value"`` -> (..., True)."""
    if "=" not in text:
        raise SearchkitError(f"override {text!r} must look like key=value, e.g. budget.archs=50")
    key, raw = text.split("=", 1)
    replace = key.endswith(":")
    keys = key.removesuffix(":").split(".")
    if not key.removesuffix(":") or any(not part for part in keys):
        raise SearchkitError(f"override {text!r} has an empty key; use dotted keys like metric.options.eps=0.1")
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        value = raw
    return keys, value, replace


def _nest(keys: list[str], value: Any) -> dict:
    for part in reversed(keys):
        value = {part: value}
    return value


def parse_override(text: str) -> dict:
    """``"a.b.c=value"`` -> ``{"a": {"b": {"c": value}}}``; the value is parsed as YAML (``3``, ``null``, ``[1,2]``)."""
    keys, value, _ = _split_override(text)
    return _nest(keys, value)


def apply_override(data: dict, text: str) -> dict:
    """``data`` with the override ``text`` applied: ``key=value`` merges a mapping value into the mapping
    already there (``space.build={C: 4}`` keeps ``layers``) and sets anything else; ``key:=value`` replaces
    the value whole (``strategy.options:={}`` clears the options)."""
    keys, value, replace = _split_override(text)
    return _replace(data, keys, value) if replace else _merge(data, _nest(keys, value))


def _replace(data: dict, keys: list[str], value: Any) -> dict:
    """``data`` with the value at the dotted path ``keys`` replaced by ``value``."""
    head, *rest = keys
    inner = data.get(head) if isinstance(data.get(head), dict) else {}
    return {**data, head: _replace(inner, rest, value) if rest else value}


#: Sections chosen by a ``name``, and the keys that belong to the named thing: naming another one in an
#: override (``strategy.name=nasi``) drops what the config file gave the old one.
NAMED_SECTIONS = {"data": ("options",), "space": ("build", "options"), "metric": ("options",),
                  "strategy": ("options",)}


def _base_name(data: dict, section: str) -> str:
    """The name ``data`` gives ``section`` (a metric spec's name without its options), else the default."""
    value = data.get(section)
    name = value.get("name") if isinstance(value, dict) else None
    name = getattr(RunConfig(), section).name if name is None else name
    return str(name).split(":", 1)[0]


def apply_overrides(data: dict, overrides: list[str] | tuple[str, ...]) -> dict:
    """``data`` (a config file's mapping) with every override applied in order (:func:`apply_override`).

    A section of :data:`NAMED_SECTIONS` whose name the overrides change loses the options the file gave
    its old strategy, metric, dataset or space; options given in overrides are kept, in any order.
    """
    def applied(base: dict) -> dict:
        for text in overrides:
            base = apply_override(base, text)
        return base

    merged = applied(data)
    switched = [section for section in NAMED_SECTIONS if _base_name(merged, section) != _base_name(data, section)]
    if not switched:
        return merged
    return applied({key: {k: v for k, v in value.items() if k not in NAMED_SECTIONS[key]}
                    if key in switched and isinstance(value, dict) else value for key, value in data.items()})


def read_yaml(path: str | Path) -> dict:
    """A YAML mapping from ``path``; SearchkitError if missing, unreadable or not a mapping."""
    path = Path(path)
    if not path.is_file():
        raise SearchkitError(f"config file not found: {path}; pass an existing YAML file, e.g. --config configs/default.yaml")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise SearchkitError(f"config file {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SearchkitError(f"config file {path} must hold a mapping of keys, got {type(data).__name__}")
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Defaults, then the YAML file at ``path`` (if any), then the ``key=value`` overrides (:func:`apply_overrides`)."""
    return config_from_dict(apply_overrides(read_yaml(path) if path is not None else {}, overrides))


def config_from_dict(data: dict) -> RunConfig:
    """A validated RunConfig from a (possibly partial) nested dict (a ``budget`` with
    ``wall_seconds`` and no ``archs`` gets ``archs: null``; see :class:`BudgetConfig`)."""
    budget = data.get("budget")
    if isinstance(budget, dict) and budget.get("wall_seconds") is not None and "archs" not in budget:
        data = {**data, "budget": {**budget, "archs": None}}
    return build_section(RunConfig, data, "")
