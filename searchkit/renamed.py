"""Old import paths of renamed modules, kept for one release.

``import searchkit.metrics.ntk_family`` still works: it warns (DeprecationWarning, naming the new
modules) and gives a module holding the public names of the modules the old one was split into.
No file stands at an old path, so the registries' discovery (:mod:`searchkit.registry`) never
imports one. Installed by ``import searchkit``; a rename adds one line to :data:`MOVED`.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import warnings
from importlib import import_module
from types import ModuleType

#: old module -> the modules its contents moved to (removed in the release after next).
MOVED: dict[str, tuple[str, ...]] = {
    "searchkit.metrics.ntk_family": ("searchkit.metrics.ntk_metrics", "searchkit.metrics.loss_gradient",
                                     "searchkit.metrics.linear_regions"),
    "searchkit.metrics.scoring": ("searchkit.metrics.base",),
    "searchkit.hardware.cost": ("searchkit.hardware.cost_models",),  # collided with metrics.cost
    "searchkit.hardware.run": ("searchkit.budget",),  # engine-level wiring, above the spaces
    "searchkit.hardware.front": ("searchkit.front",),  # reads the strategies' answers
    "searchkit.report": ("searchkit.correlation_report",),
    "searchkit.study.report": ("searchkit.study.benchmark_report", "searchkit.study.anytime"),
}


def _caller_level() -> int:
    """The ``stacklevel`` that points a warning at the import statement (past importlib's frames)."""
    frame, level = sys._getframe(2), 2
    while frame is not None and (frame.f_code.co_filename.startswith("<frozen importlib")
                                 or frame.f_code.co_filename == __file__):
        frame, level = frame.f_back, level + 1
    return level


class _Moved(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old names of :data:`MOVED` and fills each with its new modules' public names."""

    def find_spec(self, fullname: str, path: object, target: object = None) -> importlib.machinery.ModuleSpec | None:
        return importlib.machinery.ModuleSpec(fullname, self) if fullname in MOVED else None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        new = MOVED[module.__name__]
        warnings.warn(f"{module.__name__} is renamed: import from {' or '.join(new)} (the old path goes in the "
                      "next release)", DeprecationWarning, stacklevel=_caller_level())
        for name in new:
            target = import_module(name)
            module.__dict__.update((k, v) for k, v in vars(target).items() if not k.startswith("_"))


def install() -> None:
    """Let the old paths of :data:`MOVED` import (once per process)."""
    if not any(isinstance(finder, _Moved) for finder in sys.meta_path):
        sys.meta_path.append(_Moved())
