"""docs/recipes.md shows pieces of examples/notes as fragments: each must be the file's code,
word for word, so the page cannot drift from the service it describes. (Its runnable blocks
run with every other page's, in tests/test_docs.py.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "recipes.md"
QUOTED = re.compile(
    r"<!-- docs-test: fragment: from (examples/notes/[\w/]+\.py) [^>]*-->\n```python\n(.*?)^```",
    re.DOTALL | re.MULTILINE,
)


def quoted_fragments(text: str) -> list[tuple[str, str]]:
    return QUOTED.findall(text)


@pytest.mark.parametrize(("path", "code"), quoted_fragments(PAGE.read_text(encoding="utf-8")))
def test_a_quoted_fragment_is_the_files_code(path: str, code: str) -> None:
    source = (ROOT / path).read_text(encoding="utf-8")
    assert code in source, f"docs/recipes.md quotes {path}, but the file has changed: " \
                           "copy the current code into the page"


def test_every_fragment_of_the_page_is_a_quote_and_there_are_some() -> None:
    text = PAGE.read_text(encoding="utf-8")
    assert len(quoted_fragments(text)) >= 5
    assert text.count("docs-test: fragment") == len(quoted_fragments(text))


def test_a_changed_quote_is_caught() -> None:
    page = ("<!-- docs-test: fragment: from examples/notes/app.py (checked) -->\n"
            "```python\ndef create_app(settings: Settings | None = None) -> Nope:\n```\n")
    [(path, code)] = quoted_fragments(page)
    assert code not in (ROOT / path).read_text(encoding="utf-8")
