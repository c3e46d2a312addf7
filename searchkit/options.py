"""Typed options: check user-given values against type annotations, with one-line errors.

Config sections, metric options and strategy options all come from YAML or ``key=value`` text,
so a value can be of any type. :func:`check_value` accepts a value when it fits the annotation
(ints for floats, ``Literal`` choices, unions with ``None``) and otherwise raises
:class:`~searchkit.errors.SearchkitError` naming the option, the expected type and the value.
:func:`check_options` does that for every keyword of a callable or a dataclass.
"""
from __future__ import annotations

import collections.abc
import dataclasses
import inspect
import types
import typing
from typing import Any, Callable, Literal

from searchkit.errors import SearchkitError

_NAMES = {type(None): "null", bool: "true/false", int: "an integer", float: "a number", str: "a string",
          dict: "a mapping", list: "a list", tuple: "a list", collections.abc.Sequence: "a list"}


def _alternatives(annotation: Any) -> tuple[Any, ...]:
    origin = typing.get_origin(annotation)
    if isinstance(annotation, types.UnionType) or origin is typing.Union:
        return tuple(a for arg in typing.get_args(annotation) for a in _alternatives(arg))
    return (annotation,)


def _fits(value: Any, kind: Any) -> tuple[bool, Any]:
    """(whether ``value`` fits the single type ``kind``, the value converted to it)."""
    if kind is Any:
        return True, value
    if kind is type(None) or kind is None:
        return value is None, value
    origin = typing.get_origin(kind)
    if origin is Literal:
        return any(value == choice and type(value) is type(choice) for choice in typing.get_args(kind)), value
    if origin in (list, tuple, collections.abc.Sequence) or kind in (list, tuple):
        return isinstance(value, (list, tuple)), value
    if origin is dict or kind is dict:
        return isinstance(value, dict), value
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if isinstance(kind, type):
        return isinstance(value, kind), value
    return True, value  # an annotation we do not check (e.g. a forward reference)


def describe(annotation: Any) -> str:
    """``"a number or null"``, ``"one of 'train', 'eval'"``: what an annotation accepts, for messages."""
    parts = []
    for kind in _alternatives(annotation):
        if typing.get_origin(kind) is Literal:
            parts.append("one of " + ", ".join(repr(c) for c in typing.get_args(kind)))
        else:
            parts.append(_NAMES.get(typing.get_origin(kind) or kind, getattr(kind, "__name__", str(kind))))
    return " or ".join(parts)


def check_value(where: str, value: Any, annotation: Any) -> Any:
    """``value`` converted to fit ``annotation`` (int -> float), else SearchkitError naming ``where``."""
    for kind in _alternatives(annotation):
        ok, converted = _fits(value, kind)
        if ok:
            return converted
    raise SearchkitError(f"{where} must be {describe(annotation)}, got {value!r}")


def annotations_of(target: Callable | type) -> dict[str, tuple[Any, bool]]:
    """Keyword name -> (annotation, has a default) for a dataclass's init fields or a callable's
    keyword parameters (``self``, ``*args``, ``**kwargs`` and positional-only ones excluded)."""
    if dataclasses.is_dataclass(target):
        hints = typing.get_type_hints(target, include_extras=False)
        return {f.name: (hints.get(f.name, Any), f.default is not dataclasses.MISSING
                         or f.default_factory is not dataclasses.MISSING)
                for f in dataclasses.fields(target) if f.init}
    hints = typing.get_type_hints(target.__init__ if isinstance(target, type) else target)
    signature = inspect.signature(target)
    return {name: (hints.get(name, Any), p.default is not inspect.Parameter.empty)
            for name, p in signature.parameters.items()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def check_options(what: str, target: Callable | type, options: dict[str, Any],
                  given: tuple[str, ...] = ()) -> dict[str, Any]:
    """``options`` with every value checked against ``target``'s annotations (and converted).

    ``what`` names the owner in messages ("metric 'kcc'"); ``given`` lists parameters the caller
    supplies itself (e.g. a strategy's ``space`` and ``rng``), which users may not set.
    """
    known = {k: v for k, v in annotations_of(target).items() if k not in given}
    checked = {}
    for key, value in options.items():
        if key not in known:
            listing = ", ".join(known) or "none"
            raise SearchkitError(f"{what} has no option {key!r}; its options are: {listing}")
        checked[key] = check_value(f"{what} option {key}", value, known[key][0])
    return checked
