"""The layering rule of docs/architecture.md ("Levels"): a module imports only from its own level or
below, and searchkit/'s import graph has no cycles. The level map is :data:`searchkit.levels.LEVELS`."""
from __future__ import annotations

from pathlib import Path

import pytest

from searchkit.levels import LEVELS, cycles, import_graph, level_of, modules_of, upward_imports

ROOT = Path(__file__).resolve().parents[1]


def test_every_module_has_a_level() -> None:
    unplaced = []
    for module in modules_of(ROOT):
        try:
            level_of(module)
        except KeyError:
            unplaced.append(module)
    assert not unplaced, f"add these modules to searchkit.levels.LEVELS: {unplaced}"


def test_no_upward_imports() -> None:
    upward = [f"{a} ({LEVELS[level_of(a)][0]}) imports {b} ({LEVELS[level_of(b)][0]})"
              for a, b in upward_imports(import_graph(ROOT))]
    assert not upward, "imports that run up the levels:\n" + "\n".join(upward)


def test_no_import_cycles() -> None:
    found = cycles(import_graph(ROOT, typing=False))
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_graph_sees_every_kind_of_import(tmp_path: Path) -> None:
    """A synthetic package: top-level, function-local, relative, ``from P import module``,
    ``import_module`` and TYPE_CHECKING imports are all edges; a cycle and an upward import are found."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "low.py": "def f():\n    from pkg.high import g  # upward, function-local\n",
        "high.py": "from pkg import low\nfrom importlib import import_module\nimport_module('pkg.sub.b')\n",
        "sub/__init__.py": "from . import a\n",
        "sub/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.sub.b import B\n",
        "sub/b.py": "import pkg.sub.a\nclass B: ...\n",
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    graph = import_graph(tmp_path, "pkg")
    assert graph == {"pkg": set(), "pkg.low": {"pkg.high"}, "pkg.high": {"pkg.low", "pkg.sub.b"},
                     "pkg.sub": {"pkg.sub.a"}, "pkg.sub.a": {"pkg.sub.b"}, "pkg.sub.b": {"pkg.sub.a"}}
    assert cycles(graph) == [["pkg.high", "pkg.low"], ["pkg.sub.a", "pkg.sub.b"]]
    # the TYPE_CHECKING import is no run-time edge: its cycle goes, the other stays
    assert cycles(import_graph(tmp_path, "pkg", typing=False)) == [["pkg.high", "pkg.low"]]
    levels = (("bottom", ("pkg.low", "pkg.sub")), ("top", ("pkg", "pkg.high")))
    assert upward_imports(graph, levels) == [("pkg.low", "pkg.high")]
    assert level_of("pkg.sub.a", levels) == 0 and level_of("pkg", levels) == 1
    with pytest.raises(KeyError, match="pkg.other is on no level"):
        level_of("pkg.other", levels)


def test_renamed_names_warn_for_one_release() -> None:
    import importlib
    import sys

    from searchkit.hardware import cost_models
    from searchkit.spaces import base

    sys.modules.pop("searchkit.hardware.cost", None)
    with pytest.warns(DeprecationWarning, match="searchkit.hardware.cost is renamed: import from searchkit.hardware.cost_models"):
        old = importlib.import_module("searchkit.hardware.cost")
    assert old.TableCost is cost_models.TableCost and old.MeasuredLatency is cost_models.MeasuredLatency
    from searchkit import budget, front

    for name in ("searchkit.hardware.run", "searchkit.hardware.front"):
        sys.modules.pop(name, None)
    with pytest.warns(DeprecationWarning, match="searchkit.hardware.run is renamed: import from searchkit.budget"):
        assert importlib.import_module("searchkit.hardware.run").open_hardware is budget.open_hardware
    with pytest.warns(DeprecationWarning, match="searchkit.hardware.front is renamed: import from searchkit.front"):
        assert importlib.import_module("searchkit.hardware.front").write_front is front.write_front
    from searchkit import correlation_report
    from searchkit.study import anytime, benchmark_report

    for name in ("searchkit.report", "searchkit.study.report"):
        sys.modules.pop(name, None)
    with pytest.warns(DeprecationWarning, match="searchkit.report is renamed: import from searchkit.correlation_report"):
        assert importlib.import_module("searchkit.report").correlate_all is correlation_report.correlate_all
    with pytest.warns(DeprecationWarning, match="searchkit.study.report is renamed: import from searchkit.study.benchmark_report"):
        old_study = importlib.import_module("searchkit.study.report")
    assert old_study.write_summary is benchmark_report.write_summary and old_study.mean_std is anytime.mean_std
    with pytest.warns(DeprecationWarning, match="Space is renamed BaseSpace"):
        assert base.Space is base.BaseSpace
    with pytest.raises(AttributeError, match="no attribute 'Spaces'"):
        base.Spaces


def test_the_docs_quote_the_level_map() -> None:
    from searchkit.levels import levels_table

    assert levels_table() in (ROOT / "docs" / "architecture.md").read_text(), \
        "docs/architecture.md's level table differs from searchkit.levels.LEVELS: paste levels_table() there"


def test_no_function_in_searchkit_is_over_80_lines() -> None:
    """docs/architecture.md ("Levels"): a function that does one job fits on a screen."""
    import ast

    long = [f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path in sorted((ROOT / "searchkit").rglob("*.py"))
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 80]
    assert not long, "split these functions:\n" + "\n".join(long)
