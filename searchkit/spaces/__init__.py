"""Search spaces: each space module registers its class with ``@SPACES.register(name)``
(:mod:`searchkit.registry`); users call :func:`get_space`."""
from __future__ import annotations

from searchkit.options import check_options
from searchkit.spaces.base import SPACES, SearchSpace
from searchkit.spaces.nb201 import NB201Arch, NB201Space


def get_space(name: str, **options) -> SearchSpace:
    """A search space by registry name with its options, e.g. ``get_space("nb201", exclude_degenerate=True)``
    (unknown or mistyped options -> SearchkitError)."""
    cls = SPACES.get(name)
    return cls(**check_options(f"space {name!r}", cls, options))


def search_space(name: str, options: dict) -> SearchSpace:
    """The space a search runs in: its ``search_defaults`` (e.g. NB201 leaves out degenerate cells),
    then the run's ``space.options``."""
    return get_space(name, **{**getattr(SPACES.get(name), "search_defaults", {}), **options})


__all__ = ["SPACES", "NB201Arch", "NB201Space", "SearchSpace", "get_space", "search_space"]
