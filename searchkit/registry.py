"""A tiny generic name -> factory registry used by every pluggable kind (spaces, metrics, ...)."""
from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from searchkit.errors import SearchkitError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories; rejects duplicate names and lists the known ones on a miss."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator: ``@REG.register("name")`` over a class or factory function."""

        def decorate(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._factories[name] = factory
            return factory

        return decorate

    def get(self, name: str) -> Callable[..., T]:
        if name not in self._factories:
            known = ", ".join(sorted(self._factories))
            raise SearchkitError(f"unknown {self.kind} {name!r}; choose one of: {known}")
        return self._factories[name]

    def create(self, name: str, **kwargs) -> T:
        return self.get(name)(**kwargs)

    def names(self) -> list[str]:
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
