"""The task package's layout (STYLE.md, issue #24): one concept per module, none over 500 lines,
and no object that reads, sets or calls another object's private attributes (a reach-in: give
that object a method, or move the logic to where the state lives)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "joey" / "tasks"
LIMIT = 500
# The one exception: the backend contract's hook, called by the per-call view of a backend
# that the contract defines beside it (`EnqueueOptions.enqueue` -> `TaskBackend._enqueue`, which
# traces the enqueue when the app traces, then calls the backend's `_submit`).
ALLOWED = {"base.py: self._backend._enqueue"}


def test_no_module_of_the_task_package_is_over_500_lines() -> None:
    long = {str(path.relative_to(PACKAGE)): lines for path in sorted(PACKAGE.rglob("*.py"))
            if (lines := path.read_text(encoding="utf-8").count("\n")) > LIMIT}  # fmt: skip
    assert long == {}


def reach_ins(source: str) -> list[str]:
    """Every private attribute of something other than ``self`` or ``cls`` in `source`."""
    return [
        ast.unparse(node)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
        and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
    ]


def test_no_object_reaches_into_another() -> None:
    found = {
        f"{path.relative_to(PACKAGE)}: {hit}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for hit in reach_ins(path.read_text(encoding="utf-8"))
    }
    assert found - ALLOWED == set()


def test_a_reach_in_is_found() -> None:
    source = (
        "def f(run, backend):\n"
        "    backend._count(run.name)\n"
        "    run._state = self._state\n"
        "    return run.__class__, type(run)._table\n"
    )
    assert sorted(reach_ins(source)) == ["backend._count", "run._state", "type(run)._table"]
