"""The documentation's examples run: every ```python block of docs/*.md and README.md.

A reader copies an example as it is, so each block runs as written, in a fresh module namespace
and in a temporary working directory, and must pass its own asserts. Two HTML comments, on the
line just above a block, change that (they show in the page's source, next to the block):

    <!-- docs-test: continue -->
        The block continues the block before it: it runs after the blocks it continues, in one
        namespace (the tutorial builds one app step by step).
    <!-- docs-test: fragment: <why it cannot run on its own> -->
        The block is a piece of something larger (a worker process, an app needing a real
        database...). It is compiled, top-level ``await`` allowed, so a syntax error still
        fails, but not run. The reason is required.

Examples read secrets from the environment as an app should; the runner sets
``SESSION_SECRET``, and it puts back the log levels an example changes. Anything else that is
fenced ```python runs. Code that is not Python is fenced with its own language (```bash,
```text, ```js).

There is no way to skip a Python block: a fence the runner would not read but that looks like
Python (```py, ```py-skip, ```python3, ```pycon, ```python with more after it, an indented
or ~~~ fence) fails the page, with a message saying how to mark the block instead.
"""

from __future__ import annotations

import ast
import logging
import re
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS_PAGES = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "docs").glob("*.md"))
TESTED_PAGES = (*DOCS_PAGES, "README.md")
CONTINUE = "<!-- docs-test: continue -->"
# The comment just above a block: its text never crosses a "-->", so a marker further up the
# page (above another comment) is not taken for this block's.
FRAGMENT = re.compile(r"<!--\s*docs-test:\s*fragment\b:?((?:(?!-->).)*)-->\Z", re.DOTALL)
MARKER = re.compile(r"<!--\s*docs-test\b((?:(?!-->).)*)-->\Z", re.DOTALL)
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
# Any fence opening (indented, ``` or ~~~, any info string), to find Python the runner would skip.
ANY_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([^\n]*)$", re.MULTILINE)
PYTHONISH = re.compile(r"[{.\s]*i?py", re.IGNORECASE)  # py, py-skip, python3, pycon, {.python}


class Block:
    def __init__(
        self, page: str, line: int, code: str, previous: Block | None, *, fragment: bool = False,
    ) -> None:
        self.page = page
        self.line = line
        self.code = code
        self.previous = previous  # the block this one continues, if any
        self.fragment = fragment  # compiled, not run

    def chain(self) -> list[Block]:
        blocks: list[Block] = []
        block: Block | None = self
        while block is not None:
            blocks.append(block)
            block = block.previous
        return blocks[::-1]


def _refuse_skipped_python(page: str, text: str) -> None:
    """A block that looks like Python but is not fenced exactly ```python would not run."""
    for match in ANY_FENCE.finditer(text):
        opening = match.group(0).rstrip()
        if opening == "```python" or not PYTHONISH.match(match.group(2)):
            continue
        line = text.count("\n", 0, match.start()) + 1
        raise AssertionError(
            f"{page}:{line}: {opening.strip()!r} is not run by tests/test_docs.py. Fence "
            "Python as ```python, unindented, with nothing after it; mark the block "
            "<!-- docs-test: continue --> to continue the block before it, or "
            "<!-- docs-test: fragment: <why it cannot run> --> to only compile it. "
            "Fence what is not Python as ```text."
        )


def python_blocks(page: str, *, refuse_skipped: bool = True) -> list[Block]:
    text = (ROOT / page).read_text(encoding="utf-8")
    if refuse_skipped:
        _refuse_skipped_python(page, text)
    blocks: list[Block] = []
    for match in FENCE.finditer(text):
        if match.group(1).strip() != "python":
            continue
        before = text[: match.start()].rstrip()
        line = text.count("\n", 0, match.start(2)) + 1
        previous = None
        fragment = False
        if before.endswith(CONTINUE):
            if not blocks:
                raise AssertionError(f"{page}:{line}: nothing to continue")
            previous = blocks[-1]
        elif (found := FRAGMENT.search(before)) is not None:
            if not found.group(1).strip():
                raise AssertionError(f"{page}:{line}: say why the fragment cannot run: "
                                     "<!-- docs-test: fragment: the reason -->")
            fragment = True
        elif (other := MARKER.search(before)) is not None:
            raise AssertionError(f"{page}:{line}: unknown marker {other.group(0)!r}; "
                                 "use docs-test: continue or docs-test: fragment: <why>")
        blocks.append(Block(page, line, match.group(2), previous, fragment=fragment))
    return blocks


# A skipped block fails test_no_page_skips_python, not the collection of every example.
ALL_BLOCKS = [
    block for page in TESTED_PAGES for block in python_blocks(page, refuse_skipped=False)
]


def test_every_page_is_tested() -> None:
    assert "docs/forms-and-files.md" in TESTED_PAGES and "README.md" in TESTED_PAGES
    assert len(TESTED_PAGES) == len(list((ROOT / "docs").glob("*.md"))) + 1


def test_markers_are_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```python\nx = 1\n```\n\n<!-- docs-test: continue -->\n```python\nx += 1\n```\n"
        "<!-- docs-test: fragment: needs a worker -->\n```python\nawait job()\n```\n"
        "```bash\nmake run\n```\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    first, second, third = python_blocks("page.md")
    assert (first.previous, second.previous, third.fragment) == (None, first, True)
    assert second.chain() == [first, second] and not first.fragment
    page.write_text("<!-- docs-test: fragment -->\n```python\nx\n```\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="say why"):
        python_blocks("page.md")
    page.write_text("<!-- docs-test: skip -->\n```python\nx\n```\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="unknown marker"):
        python_blocks("page.md")
    # another comment just above a block: the block runs, whatever markers are further up
    page.write_text("<!-- docs-test: fragment: a worker -->\n```python\nawait job()\n```\n"
                    "<!-- quoted from examples/x.py -->\n```python\nx = 1\n```\n",
                    encoding="utf-8")
    fragment, quoted = python_blocks("page.md")
    assert fragment.fragment and not quoted.fragment


@pytest.mark.parametrize("fence", [
    "```py-skip", "```py", "```python3", "```pycon", "```Python", "```python title=app.py",
    "```{.python}", "  ```python", "~~~python", "````python",
])
def test_python_that_would_not_run_is_refused(
    fence: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = tmp_path / "page.md"
    closing = fence.strip()[:4] if fence.strip().startswith("````") else fence.strip()[:3]
    page.write_text(f"Text.\n\n```python\nx = 1\n```\n\n{fence}\nx = 2\n{closing}\n",
                    encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    with pytest.raises(AssertionError, match=r"page\.md:7: .* is not run by tests/test_docs\.py"
                       r".*docs-test: continue.*docs-test: fragment.*```text"):
        python_blocks("page.md")


def test_other_languages_and_python_fences_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = tmp_path / "page.md"
    page.write_text("```python \nx = 1\n```\n```bash\npip install joey\n```\n"
                    "```text\nGET /py\n```\n```js\nnew WebSocket(url)\n```\n```\nplain\n```\n",
                    encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert [block.code for block in python_blocks("page.md")] == ["x = 1\n"]


@pytest.mark.parametrize("page", TESTED_PAGES)
def test_no_page_skips_python(page: str) -> None:
    _refuse_skipped_python(page, (ROOT / page).read_text(encoding="utf-8"))


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=[f"{b.page}:{b.line}" for b in ALL_BLOCKS])
def test_example_runs(
    block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # files an example writes land in a temporary directory
    # Examples read secrets from the environment, as a real app does.
    monkeypatch.setenv("SESSION_SECRET", "docs-test-secret-0123456789")
    root = logging.getLogger()  # a logging example may add handlers: undone afterwards
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    if block.fragment:
        source = "\n" * (block.line - 1) + block.code
        compile(source, str(ROOT / block.page), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        return
    # A real (temporary) module, so msgspec, dataclasses and typing can resolve annotations.
    stem = Path(block.page).stem.replace("-", "_")
    name = f"docs_example_{stem}_{block.line}"
    module = types.ModuleType(name)
    sys.modules[name] = module
    # ... or set a logger's level (errors.md sets "joey" to INFO), which would hide the DEBUG
    # records later tests look for: put back with setLevel, which also clears logging's caches.
    levels = _logger_levels()
    try:
        for part in block.chain():
            # Shifted by blank lines so a traceback points at the line in the Markdown file.
            source = "\n" * (part.line - 1) + part.code
            exec(compile(source, str(ROOT / part.page), "exec"), module.__dict__)
    finally:
        del sys.modules[name]
        for logger, level in levels.items():
            if logger.level != level:
                logger.setLevel(level)


def _logger_levels() -> dict[logging.Logger, int]:
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    return {logger: logger.level for logger in loggers if isinstance(logger, logging.Logger)}


def test_an_example_leaves_log_levels_as_it_found_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    joey_logger = logging.getLogger("joey")
    before = joey_logger.level
    code = 'import logging\nlogging.getLogger("joey").setLevel(logging.CRITICAL)\n'
    test_example_runs(Block("page.md", 1, code, None), tmp_path, monkeypatch)
    assert joey_logger.level == before
    assert joey_logger.isEnabledFor(logging.ERROR)  # logging's level cache was cleared too
