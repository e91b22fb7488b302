"""The documentation's examples run: every ```python block of the tested pages is executed.

Each block runs in a fresh namespace and must pass its own asserts. A block preceded by the
HTML comment ``<!-- docs-test: continue -->`` continues the block before it (the tutorial builds
one app step by step): it runs after the blocks it continues, in one namespace. Blocks that are
not meant to run are fenced as ```text or ```py-skip.
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTED_PAGES = ("docs/handlers-and-parameters.md", "docs/tutorial.md", "README.md")
CONTINUE = "<!-- docs-test: continue -->"
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


class Block:
    def __init__(self, page: str, line: int, code: str, previous: Block | None) -> None:
        self.page = page
        self.line = line
        self.code = code
        self.previous = previous  # the block this one continues, if any

    def chain(self) -> list[Block]:
        blocks: list[Block] = []
        block: Block | None = self
        while block is not None:
            blocks.append(block)
            block = block.previous
        return blocks[::-1]


def python_blocks(page: str) -> list[Block]:
    text = (ROOT / page).read_text(encoding="utf-8")
    blocks: list[Block] = []
    for match in FENCE.finditer(text):
        if match.group(1).strip() != "python":
            continue
        before = text[: match.start()].rstrip()
        line = text.count("\n", 0, match.start(2)) + 1
        previous = None
        if before.endswith(CONTINUE):
            if not blocks:
                raise AssertionError(f"{page}:{line}: nothing to continue")
            previous = blocks[-1]
        blocks.append(Block(page, line, match.group(2), previous))
    return blocks


ALL_BLOCKS = [block for page in TESTED_PAGES for block in python_blocks(page)]


def test_the_tested_pages_have_examples() -> None:
    for page in TESTED_PAGES:
        assert python_blocks(page), f"{page} has no ```python block"


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=[f"{b.page}:{b.line}" for b in ALL_BLOCKS])
def test_example_runs(block: Block) -> None:
    # A real (temporary) module, so msgspec, dataclasses and typing can resolve annotations.
    stem = Path(block.page).stem.replace("-", "_")
    name = f"docs_example_{stem}_{block.line}"
    module = types.ModuleType(name)
    sys.modules[name] = module
    try:
        for part in block.chain():
            # Shifted by blank lines so a traceback points at the line in the Markdown file.
            source = "\n" * (part.line - 1) + part.code
            exec(compile(source, str(ROOT / part.page), "exec"), module.__dict__)
    finally:
        del sys.modules[name]
