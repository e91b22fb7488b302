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
import inspect
import os
import sys
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


def _async_generators(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.AsyncFunctionDef):
            own = [sub for sub in ast.walk(node) if isinstance(sub, ast.Yield | ast.YieldFrom)]
            nested = [sub for inner in ast.walk(node) if inner is not node
                      and isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
                      for sub in ast.walk(inner) if isinstance(sub, ast.Yield | ast.YieldFrom)]
            if len(own) > len(nested):
                found.append(f"{node.name} (line {node.lineno})")
    return found


@pytest.mark.parametrize("path", COMPILED_MODULES)
def test_compiled_modules_hold_no_async_generators(path: str) -> None:
    # mypyc does not compile them: a streaming body is an interpreted module's job
    # (joey.streaming), or an async-iterator class (Request.stream()).
    assert _async_generators(ROOT / "src" / path) == []


def test_the_async_generator_finder_finds_them(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "async def gen():\n    yield 1\n"
        "async def coro():\n    def inner():\n        yield 1\n    return inner\n",
        encoding="utf-8",
    )
    assert _async_generators(source) == ["gen (line 1)"]


# Modules whose classes users (and Joey's interpreted modules) subclass.
USER_FACING = ("joey/requests.py", "joey/responses.py", "joey/datastructures.py")


def _subclassable() -> list[type]:
    import joey

    classes = {getattr(joey, name) for name in joey.__all__ if name in vars(joey)}
    for path in USER_FACING:
        module = importlib.import_module(_module_name(path))
        classes |= {value for name, value in vars(module).items() if not name.startswith("_")}
    compiled = {_module_name(path) for path in COMPILED_MODULES}
    return sorted(
        (c for c in classes if inspect.isclass(c) and c.__module__ in compiled),
        key=lambda c: c.__qualname__,
    )


def test_user_facing_modules_are_compiled() -> None:
    assert set(USER_FACING) <= set(COMPILED_MODULES)


@pytest.mark.parametrize("cls", _subclassable(), ids=lambda c: c.__qualname__)
def test_python_code_can_subclass_the_compiled_public_classes(cls: type) -> None:
    # Compiled, a class refuses Python subclasses unless it says
    # @mypyc_attr(allow_interpreted_subclasses=True) (joey.compiled).
    subclass = type(f"My{cls.__name__}", (cls,), {"__module__": __name__})
    assert issubclass(subclass, cls)


def test_a_python_subclass_of_a_compiled_response_overrides_what_it_sends() -> None:
    from joey.responses import JSONResponse

    class Wrapped(JSONResponse):
        media_type_default = "application/vnd.joey+json"

        def render(self, content: Any) -> bytes:
            return super().render({"data": content})

    response = Wrapped([1, 2], status_code=201)
    assert response.body == b'{"data":[1,2]}'
    assert response.raw_headers(len(response.body)) == [
        (b"content-type", b"application/vnd.joey+json"),
        (b"content-length", b"14"),
    ]


def _load_compiled_helper(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "src" / "joey" / "compiled.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_mypy_extensions_mypyc_attr_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mypy_extensions", None)  # `import` raises ImportError
    helper = _load_compiled_helper("joey_compiled_without_mypy_extensions")

    class Plain:
        pass

    assert helper.mypyc_attr(allow_interpreted_subclasses=True)(Plain) is Plain
    assert helper.mypyc_attr.__module__ == "joey_compiled_without_mypy_extensions"


def test_with_mypy_extensions_mypyc_attr_is_its_own() -> None:
    pytest.importorskip("mypy_extensions")
    helper = _load_compiled_helper("joey_compiled_with_mypy_extensions")
    assert helper.mypyc_attr.__module__ == "mypy_extensions"
