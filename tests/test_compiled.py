"""The optional compiled build (hatch_build.py, `make compiled`, `make test-compiled`).

The whole suite is what proves the compiled wheel behaves like the pure package: `make
test-compiled` runs it against the installed wheel with ``JOEY_EXPECT_COMPILED=1``. These tests
make sure each run tests what it claims to: the compiled modules under that variable, the pure
ones otherwise (an extension module left in ``src/`` would silently shadow its source).
"""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import importlib.util
import os
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
HOOK_CONFIG = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["hooks"]["custom"]
COMPILED_MODULES: list[str] = HOOK_CONFIG["compiled-modules"]
EXPECT_COMPILED = os.environ.get("JOEY_EXPECT_COMPILED") == "1"


def _module_name(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def _build_hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("joey_hatch_build", ROOT / "hatch_build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_compiled_modules_are_request_path_modules_of_joey() -> None:
    assert COMPILED_MODULES, "nothing to compile"
    for path in COMPILED_MODULES:
        assert (ROOT / "src" / path).is_file(), path
    assert "joey/_engine/tree.py" in COMPILED_MODULES


@pytest.mark.parametrize("path", COMPILED_MODULES)
def test_the_run_imports_the_build_it_claims_to_test(path: str) -> None:
    module = importlib.import_module(_module_name(path))
    filename = module.__file__ or ""
    is_extension = filename.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
    if EXPECT_COMPILED:
        assert is_extension, f"{module.__name__} is not compiled: {filename}"
        assert ROOT / "src" not in Path(filename).parents, "the compiled run imports src/"
    else:
        assert filename.endswith(".py"), f"{module.__name__} is not the pure module: {filename}"


def test_without_the_variable_the_hook_asks_for_and_does_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hook_module = _build_hook()
    hook = hook_module.CompiledBuildHook.__new__(hook_module.CompiledBuildHook)
    for value in (None, "", "0"):
        if value is None:
            monkeypatch.delenv("JOEY_COMPILE", raising=False)
        else:
            monkeypatch.setenv("JOEY_COMPILE", value)
        assert hook.dependencies() == []
        build_data: dict[str, Any] = {"force_include": {}, "pure_python": True}
        hook.initialize("standard", build_data)
        assert build_data == {"force_include": {}, "pure_python": True}


def test_with_the_variable_the_hook_asks_for_a_pinned_mypy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOEY_COMPILE", "1")
    hook_module = _build_hook()
    hook = hook_module.CompiledBuildHook.__new__(hook_module.CompiledBuildHook)
    dependencies = hook.dependencies()
    assert any(d.startswith("mypy==") for d in dependencies), dependencies
    assert any(d.startswith("setuptools") for d in dependencies), dependencies


def _awaits_in_finally(path: Path) -> list[int]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Try | ast.TryStar):
            for statement in node.finalbody:
                found += [
                    sub.lineno for sub in ast.walk(statement)
                    if isinstance(sub, ast.Await | ast.AsyncWith | ast.AsyncFor)
                ]
    return found


@pytest.mark.parametrize("path", COMPILED_MODULES)
def test_compiled_modules_do_not_await_in_finally(path: str) -> None:
    # mypyc (2.4) gets one case wrong: a compiled coroutine that suspends in a `finally:`
    # re-raises the exception its *caller* was handling (session middleware calls the app
    # from an `except` block). Clean up in `except BaseException: ...; raise` and after.
    lines = _awaits_in_finally(ROOT / "src" / path)
    assert not lines, f"{path}: await inside finally at lines {lines}"
