"""Search spaces: one registry line per space; users call :func:`get_space`."""
from __future__ import annotations

from searchkit.registry import Registry
from searchkit.spaces.base import SearchSpace
from searchkit.spaces.darts import DartsSpace
from searchkit.spaces.nb201 import NB201Arch, NB201Space

SPACES: Registry[SearchSpace] = Registry("search space")
SPACES.register("nb201")(NB201Space)
SPACES.register("darts")(DartsSpace)


def get_space(name: str, **kwargs) -> SearchSpace:
    """A search space by registry name, e.g. ``get_space("nb201", table=path)``."""
    return SPACES.create(name, **kwargs)


__all__ = ["SPACES", "NB201Arch", "NB201Space", "SearchSpace", "get_space"]
