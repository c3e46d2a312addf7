"""The layering of ``searchkit``: every module's level, and the import graph it is checked against.

:data:`LEVELS` lists the levels from the lowest up; each names the modules and packages on it (a
package's name covers its submodules, except the root's; the longest matching name wins). The rule
(docs/architecture.md, "Levels"): **a module imports only from its own level or below, and the
import graph has no cycles.** ``tests/test_architecture.py`` checks it with :func:`import_graph`.

What counts as an import: every ``import`` and ``from ... import`` naming a ``searchkit`` module,
at any nesting (function-local imports included), and ``import_module("searchkit...")`` with a
constant name. Imports under ``if TYPE_CHECKING:`` (annotations only, never executed) obey the
level rule, since a type is a dependency too, but are left out of the cycle check: a cycle they
close is not one at run time (``import_graph(root, typing=False)``).
``from P import name`` is an edge to the module ``P.name`` when that is a module, else to ``P``.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Sequence

#: (level, the modules and packages on it), lowest first.
LEVELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation", ("searchkit.errors", "searchkit.paths", "searchkit.text", "searchkit.options",
                    "searchkit.registry", "searchkit.config", "searchkit.pareto", "searchkit.rundir",
                    "searchkit.store", "searchkit.levels", "searchkit.renamed")),
    ("data and tables", ("searchkit.data", "searchkit.tabular")),
    ("cost models and training", ("searchkit.hardware", "searchkit.train")),
    ("spaces", ("searchkit.spaces", "searchkit.runtime")),
    ("metrics", ("searchkit.metrics",)),
    ("scoring and evaluation", ("searchkit.scoring", "searchkit.workers", "searchkit.evaluation",
                                "searchkit.export")),
    ("strategies", ("searchkit.strategies", "searchkit.front")),
    ("driver and oracles", ("searchkit.driver", "searchkit.oracles", "searchkit.plan", "searchkit.defaults")),
    ("engine", ("searchkit.engine", "searchkit.budget")),
    ("studies and reports", ("searchkit.study", "searchkit.correlation_report", "searchkit.correlate")),
    ("interface", ("searchkit", "searchkit.cli", "searchkit.__main__")),
)

Graph = dict[str, set[str]]
Levels = Sequence[tuple[str, Sequence[str]]]


def level_of(module: str, levels: Levels = LEVELS) -> int:
    """The index in ``levels`` of the longest name covering ``module`` (a package covers its
    submodules, except the root package, which covers only its ``__init__``); KeyError when none does."""
    best, index = "", -1
    for i, (_, names) in enumerate(levels):
        for name in names:
            covers = module == name or ("." in name and module.startswith(name + "."))  # the root: itself only
            if covers and len(name) > len(best):
                best, index = name, i
    if index < 0:
        raise KeyError(f"{module} is on no level: add it to searchkit.levels.LEVELS")
    return index


def modules_of(root: Path, package: str = "searchkit") -> dict[str, Path]:
    """Every module of ``package`` under ``root`` (the repository): dotted name -> file."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imported(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """The dotted names an import node (or ``import_module("...")`` call) brings in."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:  # relative: from the module's package, up level - 1
            package = module.split(".") if is_package else module.split(".")[:-1]
            package = package[:len(package) - node.level + 1]
            base = ".".join(package + ([base] if base else []))
        return [base] + [f"{base}.{alias.name}" for alias in node.names]
    if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
        name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
        if name == "import_module" and isinstance(node.args[0].value, str):
            return [node.args[0].value]
    return []


def _typing_only(tree: ast.AST) -> set[int]:
    """ids of the nodes inside ``if TYPE_CHECKING:`` blocks (``typing.TYPE_CHECKING`` too)."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in (getattr(node.test, "id", None),
                                                             getattr(node.test, "attr", None)):
            inside.update(id(child) for statement in node.body for child in ast.walk(statement))
    return inside


def import_graph(root: Path, package: str = "searchkit", typing: bool = True) -> Graph:
    """Module -> the package's modules it imports (see the module docstring for what counts);
    ``typing=False`` leaves out the imports under ``if TYPE_CHECKING:``."""
    modules = modules_of(root, package)
    graph: Graph = {}
    for module, path in modules.items():
        targets = set()
        tree = ast.parse(path.read_text(), str(path))
        skip = set() if typing else _typing_only(tree)
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            names = _imported(node, module, path.name == "__init__.py")
            if isinstance(node, ast.ImportFrom):  # P.name when it is a module, else P
                base, members = names[0], names[1:]
                names = [m for m in members if m in modules] or [base]
                if len(names) < len(members):
                    names.append(base)
            for name in names:
                while name and name not in modules:  # a.b.C -> a.b
                    name = name.rpartition(".")[0]
                if name and name != module and (name == package or name.startswith(package + ".")):
                    targets.add(name)
        graph[module] = targets
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components of more than one module (each a cycle's modules), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(start: str) -> None:  # Tarjan's algorithm, iterative (no recursion limit)
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def upward_imports(graph: Graph, levels: Levels = LEVELS) -> list[tuple[str, str]]:
    """(importer, imported) pairs where the imported module sits on a higher level, sorted."""
    return sorted((a, b) for a, targets in graph.items() for b in targets
                  if level_of(b, levels) > level_of(a, levels))


def levels_table(levels: Levels = LEVELS) -> str:
    """The level map as the markdown table docs/architecture.md quotes, lowest level first."""
    rows = ["| level | name | modules and packages |", "|---|---|---|"]
    for i, (name, modules) in enumerate(levels):
        rows.append(f"| {i} | {name} | {', '.join(f'`{m}`' for m in modules)} |")
    return "\n".join(rows)
