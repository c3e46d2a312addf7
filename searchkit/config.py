"""Typed run configuration: YAML presets plus dotted ``key=value`` overrides from the CLI.

Every key is checked: an unknown key, a value of the wrong type or a missing file is a
:class:`SearchkitError` that names it. ``options`` mappings are free-form here and checked by
the factory they are passed to (a metric's, a strategy's, a dataset's).
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from searchkit.errors import SearchkitError


@dataclass
class DataConfig:
    """The dataset and its seeded scoring batch (``batch_size`` examples of ``split``)."""

    name: str = "digits"
    root: str | None = None
    batch_size: int = 64
    split: str = "train"
    seed: int = 0
    options: dict = field(default_factory=dict)


@dataclass
class SpaceConfig:
    """The search space; ``build`` holds network options (e.g. NB201's C and N)."""

    name: str = "nb201"
    build: dict = field(default_factory=dict)


@dataclass
class MetricConfig:
    """The training-free fitness and its options (e.g. ``eps`` for KCC)."""

    name: str = "kcc"
    options: dict = field(default_factory=dict)


@dataclass
class StrategyConfig:
    """The search strategy and its options (e.g. ``population`` for evolution)."""

    name: str = "evolution"
    options: dict = field(default_factory=dict)


@dataclass
class BudgetConfig:
    """Stop after ``archs`` architectures scored or ``seconds`` of scoring wall time, whichever first."""

    archs: int | None = 100
    seconds: float | None = None


@dataclass
class EvaluateConfig:
    """How the selected architecture's final accuracy is obtained.

    ``method``: ``auto`` (table lookup when the dataset is one of NAS-Bench-201's and the table
    is found, else training), ``table``, ``train`` or ``none``. ``epochs`` overrides the
    protocol's epoch count for training.
    """

    method: str = "auto"
    protocol: str = "nb201"
    epochs: int | None = None
    seed: int = 0


@dataclass
class RunConfig:
    """One search run (see configs/default.yaml for a commented example)."""

    name: str = "default"
    seed: int = 0
    device: str = "auto"
    table: str | None = None
    data: DataConfig = field(default_factory=DataConfig)
    space: SpaceConfig = field(default_factory=SpaceConfig)
    metric: MetricConfig = field(default_factory=MetricConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)

    def to_dict(self) -> dict:
        return asdict(self)


def _check_type(key: str, value: Any, annotation: Any) -> Any:
    """``value`` if it fits ``annotation`` (ints are accepted for floats), else SearchkitError."""
    hint = annotation
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union else (hint,)
    for kind in allowed:
        if kind is type(None) and value is None:
            return value
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind in (str, bool, dict) and isinstance(value, kind):
            return value
    names = " or ".join("null" if k is type(None) else k.__name__ for k in allowed)
    raise SearchkitError(f"config key {key!r} must be {names}, got {value!r}")


def _build(cls: type, data: Any, prefix: str) -> Any:
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
            kwargs[key] = _build(hint, value, path + ".")
        else:
            kwargs[key] = _check_type(path, value, hint)
    return cls(**kwargs)


def _merge(base: dict, update: dict) -> dict:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_override(text: str) -> dict:
    """``"a.b.c=value"`` -> ``{"a": {"b": {"c": value}}}``; the value is parsed as YAML (``3``, ``null``, ``[1,2]``)."""
    if "=" not in text:
        raise SearchkitError(f"override {text!r} must look like key=value, e.g. budget.archs=50")
    key, raw = text.split("=", 1)
    if not key or any(not part for part in key.split(".")):
        raise SearchkitError(f"override {text!r} has an empty key; use dotted keys like metric.options.eps=0.1")
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        value = raw
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


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
    """Defaults, then the YAML file at ``path`` (if any), then each ``key=value`` override."""
    data = read_yaml(path) if path is not None else {}
    for text in overrides:
        data = _merge(data, parse_override(text))
    return config_from_dict(data)


def config_from_dict(data: dict) -> RunConfig:
    """A validated RunConfig from a (possibly partial) nested dict."""
    return _build(RunConfig, data, "")
