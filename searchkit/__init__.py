"""searchkit: neural architecture search with training-free fitness (KCC and the NTK family).

``from searchkit import run_search`` runs a search (see :func:`searchkit.engine.run_search`);
``searchkit.load(RUN_DIR)`` returns its trained network (see :func:`searchkit.export.load`).
"""
from searchkit import renamed
from searchkit.errors import SearchkitError

renamed.install()  # old import paths of renamed modules keep working for one release, with a warning

__all__ = ["run_search", "SearchResult", "SearchkitError", "load"]
__version__ = "0.1.0"


def __getattr__(name: str):
    """Import the engine (and torch) only when the API is used, so ``searchkit --help`` is fast."""
    if name in ("run_search", "SearchResult"):
        from searchkit import engine

        return getattr(engine, name)
    if name == "load":
        from searchkit.export import load

        return load
    raise AttributeError(f"module 'searchkit' has no attribute {name!r}")
