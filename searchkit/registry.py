"""The one registration mechanism of every pluggable kind: metrics, strategies, datasets and spaces.

Each kind has a :class:`Registry` that knows its package (``searchkit.metrics``, ...). A plugin
registers itself where it is defined, with ``@REGISTRY.register("name")`` (or the kind's
decorator built on it: ``@metric``, ``@strategy``); nothing lists plugins by hand. The first
lookup imports every module of the package (:meth:`Registry.discover`), so a new plugin is one
new module. A renamed plugin keeps its old name as an alias (:meth:`Registry.alias`): the old
name resolves to the new one with a :class:`DeprecationWarning` naming it, for one release. An
unknown name is a one-line :class:`~searchkit.errors.SearchkitError` listing the choices.
"""
from __future__ import annotations

import pkgutil
import warnings
from importlib import import_module
from typing import Callable, Generic, Iterator, TypeVar

from searchkit.errors import SearchkitError

T = TypeVar("T")
F = TypeVar("F", bound=Callable)


class Registry(Generic[T]):
    """Maps names to factories of one ``kind``, found in the modules of ``package``; rejects
    duplicate names, resolves aliases with a deprecation warning and lists the known names on a miss."""

    def __init__(self, kind: str, package: str) -> None:
        self.kind, self.package = kind, package
        self._factories: dict[str, Callable[..., T]] = {}
        self._aliases: dict[str, str] = {}
        self._discovered = False

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator: ``@REG.register("name")`` over a class or factory function."""

        def decorate(factory: F) -> F:
            if name in self._factories or name in self._aliases:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._factories[name] = factory
            return factory

        return decorate

    def alias(self, old: str, new: str) -> None:
        """Keep the renamed ``old`` working: it resolves to ``new`` with a DeprecationWarning."""
        if old in self._factories or old in self._aliases:
            raise ValueError(f"{self.kind} {old!r} is registered twice")
        self._aliases[old] = new

    def discover(self) -> None:
        """Import every module of the package once (each registers its plugins as it is defined)."""
        if self._discovered:
            return
        self._discovered = True
        package = import_module(self.package)
        for module in pkgutil.iter_modules(package.__path__):
            if not module.name.startswith("_"):
                import_module(f"{self.package}.{module.name}")

    def resolve(self, name: str) -> str:
        """The registered name ``name`` stands for (an alias warns and gives the new name)."""
        self.discover()
        if name in self._aliases:
            new = self._aliases[name]
            warnings.warn(f"{self.kind} {name!r} is renamed {new!r}; write {new!r} (the old name goes in the "
                          "next release)", DeprecationWarning, stacklevel=3)
            return new
        if name not in self._factories:
            raise SearchkitError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}")
        return name

    def get(self, name: str) -> Callable[..., T]:
        return self._factories[self.resolve(name)]

    def create(self, name: str, **kwargs) -> T:
        return self.get(name)(**kwargs)

    def names(self) -> list[str]:
        """The registered names (aliases left out), sorted."""
        self.discover()
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        self.discover()
        return name in self._factories or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
