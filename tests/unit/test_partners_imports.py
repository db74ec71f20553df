"""The partners package's modules import each other without a circle, and each imports alone.

A circle among the rooms was once broken by late (function-level or TYPE_CHECKING) imports,
which hide which room depends on which; so every import statement counts here, wherever it
stands in the module. And the door (`partners.operations`) is for callers outside the package:
a room that imported it would make the door a room.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = "partners"
PACKAGE_DIR = Path(__file__).resolve().parents[2] / PACKAGE
DOOR = f"{PACKAGE}.operations"


def _module_names() -> list[str]:
    return sorted(
        PACKAGE if path.stem == "__init__" else f"{PACKAGE}.{path.stem}"
        for path in PACKAGE_DIR.glob("*.py")
    )


MODULES = _module_names()


def _imported(tree: ast.Module, module: str) -> Iterator[str]:
    """Every module of the package that `module` imports, at any depth of its code."""
    package = module if module == PACKAGE else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package this module is in
                base = f"{package}.{base}" if base else package
            # `from partners import queries` imports the module partners.queries.
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        yield from (name for name in names if name in MODULES)


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module in MODULES:
        path = PACKAGE_DIR / (
            "__init__.py" if module == PACKAGE else f"{module.removeprefix(PACKAGE + '.')}.py"
        )
        tree = ast.parse(path.read_text(), filename=str(path))
        graph[module] = set(_imported(tree, module)) - {module}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle (its modules, the first repeated at the end), or None."""
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return None
        path.append(module)
        for imported in sorted(graph[module]):
            if (found := visit(imported)) is not None:
                return found
        path.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        if (found := visit(module)) is not None:
            return found
    return None


def test_the_graph_sees_the_imports_it_must_see() -> None:
    """The check below is only as good as this graph: a known edge of each form is in it."""
    graph = _graph()
    assert len(MODULES) > 10, MODULES
    assert f"{PACKAGE}.purchase_many" in graph[f"{PACKAGE}.batch"]  # from partners import x
    assert f"{PACKAGE}.purchase" in graph[f"{PACKAGE}.batch"]  # from partners.x import y
    assert f"{PACKAGE}.burns" in graph[DOOR]


def test_a_circle_is_found_wherever_its_import_stands() -> None:
    tree = ast.parse("def late() -> None:\n    from partners.operations import purchase\n")
    assert list(_imported(tree, f"{PACKAGE}.batch")) == [DOOR]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_circle_among_the_partners_modules() -> None:
    assert _cycle(_graph()) is None


def test_no_room_imports_the_door() -> None:
    graph = _graph()
    assert [module for module, imported in graph.items() if DOOR in imported] == []


@pytest.mark.parametrize("module", MODULES)
def test_each_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    """Imported before any other (as a worker or a script may), the module loads: no import
    order between the rooms is needed."""
    result = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        cwd=PACKAGE_DIR.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
