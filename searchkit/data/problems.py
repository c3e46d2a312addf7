"""Every problem of an image folder reported at once: one line, the full list in a file."""
from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

from searchkit.data.decoding import Problem, cache_dir
from searchkit.errors import SearchkitError

#: problems named in the one line; the rest are in the written list
SHOWN = 3


class SkippedFilesWarning(UserWarning):
    """Files or folders of an image folder were left out (``skip_bad``)."""


def report_problems(root: Path, problems: list[Problem], skip_bad: bool) -> None:
    """Nothing if ``problems`` is empty. Otherwise a SearchkitError (or, with ``skip_bad``, a
    :class:`SkippedFilesWarning`) of one line: how many, the first :data:`SHOWN` as
    ``path: what is wrong; the fix``, and where the full list was written (beyond SHOWN)."""
    if not problems:
        return
    problems = sorted(problems)
    n = len(problems)
    shown = "; ".join(f"{rel}: {what}" for rel, what in problems[:SHOWN])
    more = f"; and {n - SHOWN} more{_write_list(root, problems)}" if n > SHOWN else ""
    noun = "problem" if n == 1 else "problems"
    if skip_bad:
        warnings.warn(f"image folder {root}: skipped {n} file(s) or folder(s) with {noun} (data.options.skip_bad=true): "
                      f"{shown}{more}", SkippedFilesWarning, stacklevel=3)
        return
    raise SearchkitError(f"image folder {root}: {n} {noun} found before any work (paths under the folder): {shown}{more}; "
                         "fix them, or set data.options.skip_bad=true to leave these files out")


def _write_list(root: Path, problems: list[Problem]) -> str:
    """Write every problem to ``<cache>/problems/<folder hash>.txt``; ``", all listed in PATH"``, or
    ``""`` where that cannot be written."""
    path = cache_dir() / "problems" / f"{hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:12]}.txt"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{len(problems)} problems in image folder {root}\n"
                        + "".join(f"{root}/{rel}: {what}\n" for rel, what in problems))
    except OSError:
        return ""
    return f", all listed in {path}"
