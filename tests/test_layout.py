"""The package's layout rules (issue #13): no import cycles, no private names imported across
modules, and an app module that stays a declaration."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "joey"


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every joey module ``name`` imports, at any level (type-checking and lazy imports too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            submodules = [f"{base}.{alias.name}" for alias in node.names
                          if f"{base}.{alias.name}" in modules]
            # `from pkg import submodule` needs the submodule, not what pkg/__init__ imports
            names_only = len(submodules) < len(node.names)
            candidates = ([base] if names_only else []) + submodules
        else:
            continue
        for candidate in candidates:
            while candidate and candidate not in modules:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name:
                targets.add(candidate)
    return targets


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
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

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles() -> None:
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]


def test_no_private_name_is_imported_from_another_module() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                offenders += [
                    f"{path.relative_to(SRC)}:{node.lineno} {node.module}.{alias.name}"
                    for alias in node.names
                    if alias.name.startswith("_") and not alias.name.startswith("__")
                    # a private *module* of the same package is fine (joey._engine, _scripts)
                    and not (PACKAGE / (node.module or "").replace("joey.", "", 1).replace(
                        ".", "/") / f"{alias.name}.py").exists()
                    and not (path.parent / f"{alias.name}.py").exists()
                ]
    assert offenders == []


def test_the_app_module_stays_a_declaration() -> None:
    """app.py declares the app and hands each request to the engine (issue #24): serving,
    startup and shutdown, tooling live elsewhere (joey._engine, joey.openapi)."""
    lines = (PACKAGE / "app.py").read_text(encoding="utf-8").count("\n")
    assert lines < 380, (f"app.py has {lines} lines: move what is not the request's journey "
                         "or the declaration API out (serving: joey._engine; startup and "
                         "shutdown: joey._engine.lifecycle)")


def test_no_module_holds_two_concepts_worth_of_code() -> None:
    """Past ~500 lines a module usually holds two concepts (STYLE.md): split by concept."""
    sizes = {str(path.relative_to(SRC)): path.read_text(encoding="utf-8").count("\n")
             for path in PACKAGE.rglob("*.py")}
    long = {name: lines for name, lines in sizes.items() if lines > 500}
    assert long == {}
