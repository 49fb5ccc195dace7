"""The package's shape: no import cycles, and no private name imported across modules.

Both read the source with :mod:`ast`, so they see imports inside functions and under
``TYPE_CHECKING`` too: a cycle hidden behind ``TYPE_CHECKING`` is still a cycle for a reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parent.parent / "graphpath"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> list[tuple[str, str, int]]:
    """(imported module, imported name or "", line) for every graphpath import in one module."""
    is_package = path.name == "__init__.py"
    found: list[tuple[str, str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(a.name, "", node.lineno) for a in node.names if a.name.startswith("graphpath")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("graphpath"):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in known:  # "from graphpath.pkg import module"
                    found.append((sub, "", node.lineno))
                else:
                    found.append((target, alias.name, node.lineno))
    return found


def _import_graph() -> tuple[nx.DiGraph, list[str]]:
    modules = _modules()
    graph: nx.DiGraph = nx.DiGraph()
    graph.add_nodes_from(modules)
    private: list[str] = []
    for name, path in modules.items():
        for target, imported, line in _imports(name, path, set(modules)):
            if target != name and target in modules:
                graph.add_edge(name, target)
            if imported.startswith("_") and not imported.startswith("__") and target != name:
                private.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {target}.{imported}")
    return graph, private


def test_the_import_graph_has_no_cycle() -> None:
    graph, _ = _import_graph()
    cycles = sorted(" -> ".join(c) for c in nx.simple_cycles(graph))
    assert not cycles, "import cycles:\n" + "\n".join(cycles[:20])


def test_no_private_name_is_imported_across_modules() -> None:
    _, private = _import_graph()
    assert not private, f"{len(private)} private imports across modules:\n" + "\n".join(private)
