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
