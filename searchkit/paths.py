"""Where searchkit looks for data a user did not name explicitly.

Order: the ``SEARCHKIT_DATA`` environment variable, then ``../shared/data`` beside the current
directory, then ``../shared/data`` beside the source checkout. A user's own files are always
given explicitly (config keys ``data.root``, ``benchmark.table``) and win over these defaults.
"""
from __future__ import annotations

import os
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parents[1]


def data_roots() -> list[Path]:
    """Candidate data directories, most specific first (existing or not)."""
    roots = []
    if os.environ.get("SEARCHKIT_DATA"):
        roots.append(Path(os.environ["SEARCHKIT_DATA"]).expanduser())
    roots += [Path.cwd() / ".." / "shared" / "data", _CHECKOUT.parent / "shared" / "data"]
    return roots


def find_data(relative: str) -> Path | None:
    """The first existing ``root / relative`` over :func:`data_roots`, else None."""
    for root in data_roots():
        candidate = root / relative
        if candidate.exists():
            return candidate.resolve()
    return None


def require_data(path: str | Path | None, relative: str, needed_for: str, how: str) -> Path:
    """``path`` if given, else the default ``relative`` file over :func:`data_roots`.

    Missing -> SearchkitError: "<needed_for> <relative>, not found [at PATH]; <how> or set
    SEARCHKIT_DATA to the folder containing <relative>".
    """
    from searchkit.errors import SearchkitError

    found = Path(path) if path is not None else find_data(relative)
    if found is None or not found.is_file():
        where = f"not found at {found}" if found is not None else "not found"
        raise SearchkitError(f"{needed_for} {relative}, {where}; {how} or set SEARCHKIT_DATA to the folder containing {relative}")
    return found


def portable(path: str | Path) -> str:
    """``path`` as a settings file records it: as given when relative; an absolute path under the
    current directory's parent (the repository and ``../shared/data`` beside it) relative to the
    current directory (``../shared/data/nb201/nb201_table.csv`` from the repository root), so
    committed settings name no machine's directories; any other absolute path as it is."""
    path = Path(path)
    if not path.is_absolute():
        return str(path)
    here = Path.cwd().resolve()
    try:
        path.resolve().relative_to(here.parent)
    except ValueError:
        return str(path)
    return os.path.relpath(path.resolve(), here)
