"""docs/recipes.md quotes pieces of examples/notes: each must be the file's code, word for word,
so the page cannot drift from the service it describes. (Its runnable blocks run with every
other page's, in tests/test_docs.py.)

A quote starts from its imports, so a reader sees where every name comes from: each import is
one the file makes (``from joey import Depends``), or names what the file itself defines
(``from examples.notes.auth import bearer`` for a quote of auth.py). After the imports, the
code is the file's, as one piece. A quote that runs as it is (it only defines functions) is
marked ``<!-- quoted from examples/notes/<file>.py ... -->`` and runs; one that declares routes
on the service's routers is a ``docs-test: fragment`` (compiled, not run).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "recipes.md"
QUOTED = re.compile(
    r"<!-- (?:docs-test: fragment: from|quoted from) (examples/notes/[\w/]+\.py)\b[^>]*-->\n"
    r"```python\n(.*?)^```",
    re.DOTALL | re.MULTILINE,
)


def quoted_fragments(text: str) -> list[tuple[str, str]]:
    return QUOTED.findall(text)


def split_imports(code: str) -> tuple[list[ast.Import | ast.ImportFrom], str]:
    """The imports a quote starts with, and the code after them."""
    imports: list[ast.Import | ast.ImportFrom] = []
    for node in ast.parse(code).body:
        if not isinstance(node, ast.Import | ast.ImportFrom):
            break
        imports.append(node)
    if not imports:
        return [], code
    end = imports[-1].end_lineno or 0
    return imports, "".join(code.splitlines(keepends=True)[end:]).lstrip("\n")


def bound_names(tree: ast.Module) -> set[str]:
    """The names a module binds at its top level: imported, defined or assigned."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def imported(tree: ast.Module) -> set[tuple[str, str, str | None]]:
    """(module, name, alias) of each import of a module (module "" for ``import x``)."""
    found: set[tuple[str, str, str | None]] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            found.update((node.module or "", alias.name, alias.asname) for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(("", alias.name, alias.asname) for alias in node.names)
    return found


def check_quote(path: str, code: str) -> None:
    source = (ROOT / path).read_text(encoding="utf-8")
    file_tree = ast.parse(source)
    module = path.removesuffix(".py").replace("/", ".")
    imports, rest = split_imports(code)
    assert imports, f"a quote of {path} starts from its imports"
    assert rest in source, f"docs/recipes.md quotes {path}, but the file has changed: " \
                           "copy the current code into the page"
    file_imports, file_names = imported(file_tree), bound_names(file_tree)
    for line in imported(ast.Module(body=list(imports), type_ignores=[])):
        source_module, name, _ = line
        own = source_module == module and name in file_names
        assert own or line in file_imports, \
            f"a quote of {path} imports {name} from {source_module or name}; the file does not"
    fragment_tree = ast.parse(code)
    used = {node.id for node in ast.walk(fragment_tree) if isinstance(node, ast.Name)}
    missing = (used & file_names) - bound_names(fragment_tree)
    assert not missing, f"a quote of {path} uses {sorted(missing)} without importing them"


@pytest.mark.parametrize(("path", "code"), quoted_fragments(PAGE.read_text(encoding="utf-8")))
def test_a_quote_is_the_files_code_from_its_imports(path: str, code: str) -> None:
    check_quote(path, code)


def test_every_fragment_of_the_page_is_a_quote_and_there_are_some() -> None:
    text = PAGE.read_text(encoding="utf-8")
    assert len(quoted_fragments(text)) >= 7
    assert text.count("docs-test: fragment") + text.count("<!-- quoted from") == len(
        quoted_fragments(text))
    assert text.count("<!-- quoted from") >= 4  # most quotes run, not only compile


@pytest.mark.parametrize(("code", "problem"), [
    ('logger = logging.getLogger("notes")\n', "its imports"),
    ("from examples.notes.settings import Settings\n\n"
     "def create_app(settings: Settings | None = None) -> Nope:\n    ...\n", "has changed"),
    ('from joey import Nope\n\nlogger = logging.getLogger("notes")\n', "the file does not"),
    ('from joey import App\n\nlogger = logging.getLogger("notes")\n', r"uses \['logging'\]"),
])
def test_a_changed_or_incomplete_quote_is_caught(code: str, problem: str) -> None:
    page = f"<!-- quoted from examples/notes/app.py (checked) -->\n```python\n{code}```\n"
    [(path, quoted)] = quoted_fragments(page)
    with pytest.raises(AssertionError, match=problem):
        check_quote(path, quoted)
