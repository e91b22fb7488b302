"""The examples in the package's docstrings run, and type-check under ``mypy --strict``.

A docstring example is the indented block after a line that ends with ``::`` (``Example::``),
as the package writes them. Each runs as its own module that starts with :data:`PRELUDE` (the
public API of ``joey``, the public names of the example's own module, a few standard names and
``app = App()``; docs/reference/index.md tells readers so) and must pass its own asserts; any
other name it uses it defines or imports. The runner sets ``SESSION_SECRET`` and ``CSRF_SECRET``.
Top-level ``await``, ``async with`` and ``async for`` are allowed: such an example runs in
``asyncio.run``. Then all the examples are type-checked together by one mypy run.

Two HTML comments (the words of tests/test_docs.py, and invisible in the rendered reference), on
the line just above the line that ends with ``::``, change that:

    <!-- docs-test: continue -->
        The example continues the one before it in the same docstring (one namespace).
    <!-- docs-test: fragment: <why it cannot run on its own> -->
        Compiled and type-checked, not run: it needs a Redis server, a worker process...

Text that is not Python is fenced with its language (```text). Nothing that looks like an example
escapes: a ```python fence or a ``>>>`` line in a docstring fails, with a message saying how to
write the example instead.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import logging
import re
import sys
import textwrap
import types
from dataclasses import dataclass
from pathlib import Path

import pytest
from mypy import api as mypy_api

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
PACKAGE = SRC / "joey"

PRELUDE = """\
import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from joey import *
from {module} import *

app = App()
"""
MARKER = re.compile(r"<!--\s*docs-test\b(.*?)-->\Z")
FRAGMENT = re.compile(r":\s*fragment\s*:(.*)\Z", re.DOTALL)
# What would look like an example to a reader but is not run: refused with a hint.
OTHER_FORMS = re.compile(r"^\s*(```+|~~~+)\s*\{?\.?(py|python|pycon)\b|^\s*>>>", re.IGNORECASE)


@dataclass
class Example:
    path: str  # relative to ROOT
    line: int  # the line of the example's first line of code in that file
    module: str  # the dotted name of the module it documents
    code: str
    previous: Example | None = None  # the example it continues
    fragment: bool = False

    @property
    def name(self) -> str:
        return f"{self.path}:{self.line}"

    def chain(self) -> list[Example]:
        chain: list[Example] = []
        example: Example | None = self
        while example is not None:
            chain.append(example)
            example = example.previous
        return chain[::-1]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _docstrings(tree: ast.Module) -> list[ast.Constant]:
    nodes: list[ast.Constant] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                    and isinstance(first.value.value, str)):
                nodes.append(first.value)
    return nodes


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def examples_in(path: Path) -> list[Example]:
    """The examples of every docstring of one source file, in order."""
    source = path.read_text(encoding="utf-8")
    relative = str(path.relative_to(ROOT))
    module = _module_name(path)
    examples: list[Example] = []
    for node in _docstrings(ast.parse(source)):
        text = node.value
        assert isinstance(text, str)
        lines = text.split("\n")
        first_line = node.lineno  # the line of the opening quotes: the docstring's line 0
        in_fence = False
        in_docstring: list[Example] = []
        index = 0
        while index < len(lines):
            line = lines[index]
            where = f"{relative}:{first_line + index}"
            if OTHER_FORMS.match(line):
                raise AssertionError(
                    f"{where}: {line.strip()!r} in a docstring is not run by "
                    "tests/test_docstrings.py: write the example as an indented block after a "
                    "line ending with '::' (Example::); fence text that is not Python as ```text"
                )
            if line.strip().startswith(("```", "~~~")):
                in_fence = not in_fence
            if in_fence or not line.rstrip().endswith("::"):
                index += 1
                continue
            start = index + 1
            while start < len(lines) and not lines[start].strip():
                start += 1
            end = start
            while end < len(lines) and (not lines[end].strip()
                                        or _indent(lines[end]) > _indent(line)):
                end += 1
            if end == start:
                raise AssertionError(f"{where}: a line ending with '::' needs an indented "
                                     "example after it (text that is not Python: ```text)")
            if _escaped_newlines(source, node):
                raise AssertionError(f"{where}: a docstring with examples must not escape "
                                     "newlines: make it a raw string (r\"\"\"...)")
            example = Example(relative, first_line + start, module,
                              textwrap.dedent("\n".join(lines[start:end])).strip("\n") + "\n")
            marker = lines[index - 1].strip() if index else ""
            if (found := MARKER.match(marker)) is not None:
                words = found.group(1)
                if words.strip() == ": continue":
                    if not in_docstring:
                        raise AssertionError(f"{where}: nothing to continue in this docstring")
                    example.previous = in_docstring[-1]
                elif (fragment := FRAGMENT.match(words)) is not None and fragment.group(1).strip():
                    example.fragment = True
                else:
                    raise AssertionError(
                        f"{where}: unknown marker {marker!r}; use <!-- docs-test: continue --> "
                        "or <!-- docs-test: fragment: <why it cannot run> -->")
            in_docstring.append(example)
            index = end
        examples += in_docstring
    return examples


def _escaped_newlines(source: str, node: ast.Constant) -> bool:
    """Whether the literal spans other lines than its value (a ``\\n`` escape, a line
    continuation): the line numbers of its examples would be wrong."""
    segment = ast.get_source_segment(source, node) or ""
    assert isinstance(node.value, str)
    return segment.count("\n") != node.value.count("\n")


ALL_EXAMPLES = [example for path in sorted(PACKAGE.rglob("*.py")) for example in examples_in(path)]


def _is_coroutine(code: str, filename: str) -> bool:
    try:
        compiled = compile(code, filename, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    except SyntaxError:
        return False  # mypy reports it, test_example_runs too
    return bool(compiled.co_flags & inspect.CO_COROUTINE)


def test_examples_are_found() -> None:
    names = {example.name.split(":")[0] for example in ALL_EXAMPLES}
    assert "src/joey/tasks/memory.py" in names and "src/joey/app.py" in names
    assert len(ALL_EXAMPLES) > 80


@pytest.mark.parametrize("example", ALL_EXAMPLES, ids=[e.name for e in ALL_EXAMPLES])
def test_example_runs(
    example: Example, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # files an example writes land in a temporary directory
    # Examples read secrets from the environment, as a real app does.
    monkeypatch.setenv("SESSION_SECRET", "docstring-test-secret-0123456789")
    monkeypatch.setenv("CSRF_SECRET", "docstring-test-csrf-secret-0123456789")
    root = logging.getLogger()  # an example may add handlers or set levels: undone afterwards
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    filename = str(ROOT / example.path)
    if example.fragment:
        for part in example.chain():
            source = "\n" * (part.line - 1) + part.code
            compile(source, filename, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        return
    name = f"docstring_example_{example.module.replace('.', '_')}_{example.line}"
    module = types.ModuleType(name)
    sys.modules[name] = module  # a real module, so that annotations resolve
    levels = {logger: logger.level for logger in _loggers()}
    try:
        exec(PRELUDE.format(module=example.module), module.__dict__)
        for part in example.chain():
            # Shifted by blank lines so that a traceback points at the line in the source.
            source = "\n" * (part.line - 1) + part.code
            code = compile(source, str(ROOT / part.path), "exec",
                           flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
            if code.co_flags & inspect.CO_COROUTINE:
                asyncio.run(eval(code, module.__dict__))
            else:
                exec(code, module.__dict__)
    finally:
        del sys.modules[name]
        for logger, level in levels.items():
            if logger.level != level:
                logger.setLevel(level)


def _loggers() -> list[logging.Logger]:
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    return [logger for logger in loggers if isinstance(logger, logging.Logger)]


def _checked_source(example: Example) -> tuple[str, list[tuple[int, Example, int]]]:
    """The module mypy checks for `example` (its chain after the prelude; in an ``async def``
    if it awaits at top level), and where each of its lines comes from."""
    chain = example.chain()
    prelude = PRELUDE.format(module=example.module)
    lines = prelude.splitlines()
    origins: list[tuple[int, Example, int]] = []  # (first line here, example, its line)
    awaits = _is_coroutine("".join(part.code for part in chain), example.path)
    if awaits:
        lines.append("async def _example() -> None:")
    for part in chain:
        origins.append((len(lines) + 1, part, part.line))
        code = textwrap.indent(part.code, "    ") if awaits else part.code
        lines += code.splitlines()
    return "\n".join(lines) + "\n", origins


@pytest.mark.timeout(600)  # a first run, with no cache, checks the whole package too
def test_examples_type_check(tmp_path: Path) -> None:
    """Every example, fragments included, passes ``mypy --strict`` against this checkout's
    source. One mypy run for all; its cache is kept under .mypy_cache/docstrings."""
    origins: dict[str, list[tuple[int, Example, int]]] = {}
    files: list[str] = []
    for number, example in enumerate(ALL_EXAMPLES):
        if any(later.previous is example for later in ALL_EXAMPLES):
            continue  # checked as part of the example that continues it
        filename = f"example_{number}.py"
        source, origins[filename] = _checked_source(example)
        (tmp_path / filename).write_text(source, encoding="utf-8")
        files.append(str(tmp_path / filename))
    config = tmp_path / "mypy.ini"
    config.write_text(f"[mypy]\nstrict = True\npython_version = 3.11\nmypy_path = {SRC}\n",
                      encoding="utf-8")
    # mypy's main raises the interpreter's recursion limit (to 2**14) and never lowers it: run
    # in this process, it let later tests decode JSON 16,000 levels deep that a server (at
    # the default limit) refuses, so test_hostile_input failed after this test only.
    limit = sys.getrecursionlimit()
    try:
        out, err, status = mypy_api.run([
            "--config-file", str(config), "--cache-dir", str(ROOT / ".mypy_cache" / "docstrings"),
            "--no-error-summary", "--show-error-codes", "--hide-error-context", *files,
        ])
    finally:
        sys.setrecursionlimit(limit)
    problems: list[str] = []
    for line in out.splitlines():
        match = re.match(r".*?(example_\d+\.py):(\d+): (.*)", line)
        if match is None:
            problems.append(line)
            continue
        filename, number, message = match.group(1), int(match.group(2)), match.group(3)
        place = f"{filename}:{number} (prelude)"
        for first, part, part_line in origins[filename]:
            if number >= first:
                place = f"{part.path}:{part_line + number - first}"
        problems.append(f"{place}: {message}")
    assert status == 0 and not problems, "\n".join(problems) + err


def test_the_collector_reads_markers_and_refuses_other_forms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "src" / "joey"
    package.mkdir(parents=True)
    path = package / "sample.py"
    path.write_text(
        'def f() -> None:\n'
        '    """Do it.\n\n'
        '    Example::\n\n'
        '        x = 1\n\n'
        '    <!-- docs-test: continue -->\n'
        '    More::\n\n'
        '        assert x == 1\n\n'
        '    <!-- docs-test: fragment: needs a worker -->\n'
        '    Then::\n\n'
        '        await worker()\n\n'
        '    ```text\n'
        '    Not Python::\n'
        '    ```\n'
        '    """\n', encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path / "src")
    first, second, third = examples_in(path)
    assert (first.line, first.code, first.module) == (6, "x = 1\n", "joey.sample")
    assert second.previous is first and second.chain() == [first, second]
    assert third.fragment and not first.fragment
    for bad, message in [
        ("    ```python\n    x = 1\n    ```\n", "is not run by"),
        ("    >>> 1 + 1\n    2\n", "is not run by"),
        ("    Example::\n\n    Nothing indented.\n", "needs an indented example"),
        ("    <!-- docs-test: skip -->\n    Example::\n\n        x = 1\n", "unknown marker"),
        ("    <!-- docs-test: fragment -->\n    Example::\n\n        x = 1\n", "unknown marker"),
        ('    Example::\n\n        x = "\\n"\n', "must not escape newlines"),
    ]:
        path.write_text(f'def f() -> None:\n    """Do it.\n\n{bad}    """\n', encoding="utf-8")
        with pytest.raises(AssertionError, match=message):
            examples_in(path)
