"""The documentation site (mkdocs.yml, `make docs`): strict mode really fails the build on a
broken link, a broken anchor, a page left out of the nav and a broken API reference, and
`make test` builds it. The API reference renders the docstrings' Sphinx roles and examples
(docs_build/griffe_roles.py); the built site opens from file://; `make docs-serve` serves it.

The real site is built by `make docs` (part of `make test`), not here; these tests build a
two-page site with the project's own configuration, so they prove what that build checks.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.integration.servers import free_port

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def _build(
    tmp_path: Path, pages: dict[str, str], nav: list[str]
) -> subprocess.CompletedProcess[str]:
    """Build ``pages`` with mkdocs.yml's theme, plugins, checks, and ``nav``."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in pages.items():
        (docs / name).write_text(text, encoding="utf-8")
    config.update(docs_dir=str(docs), site_dir=str(tmp_path / "site"), nav=nav)
    (mkdocstrings,) = (p["mkdocstrings"] for p in config["plugins"] if isinstance(p, dict)
                       and "mkdocstrings" in p)
    python = mkdocstrings["handlers"]["python"]
    python["paths"] = [str(ROOT / "src")]
    # relative to mkdocs.yml, which is in tmp_path here
    python["options"]["extensions"] = [str(ROOT / e) for e in python["options"]["extensions"]]
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "-f", str(tmp_path / "mkdocs.yml")],
        capture_output=True, text=True, timeout=300, check=False, cwd=ROOT,  # as `make docs`
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )


def test_the_configuration_is_strict() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    assert config["strict"] is True
    assert set(config["validation"].values()) == {"warn"}  # links, anchors, omitted pages
    assert "/site/" in (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()


def test_a_clean_site_builds_with_an_api_reference(tmp_path: Path) -> None:
    result = _build(tmp_path, {
        "index.md": "# Home\n\nSee [the reference](ref.md#joey.templating.Templates).\n",
        "ref.md": "# Ref\n\n::: joey.templating.Templates\n",
    }, ["index.md", "ref.md"])
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "site" / "ref.html").read_text(encoding="utf-8")
    assert "A directory (or several) of Jinja2 templates" in page  # from the docstring


def test_strict_mode_fails_on_broken_links_anchors_and_omitted_pages(tmp_path: Path) -> None:
    result = _build(tmp_path, {
        "index.md": "# Home\n\n[gone](missing.md) and [no anchor](other.md#nowhere)\n",
        "other.md": "# Other\n",
        "orphan.md": "# Not in the nav\n",
    }, ["index.md", "other.md"])
    assert result.returncode == 1
    assert "'missing.md', but the target is not found" in result.stderr
    assert "does not contain an anchor '#nowhere'" in result.stderr
    assert "orphan.md" in result.stderr


def test_strict_mode_fails_on_a_broken_api_reference(tmp_path: Path) -> None:
    result = _build(tmp_path, {"index.md": "# Home\n\n::: joey.templating.Nothing\n"},
                    ["index.md"])
    assert result.returncode == 1
    assert "joey.templating.Nothing" in result.stderr


def test_make_test_builds_the_docs_strictly(tmp_path: Path) -> None:
    plan = subprocess.run(
        ["make", "-n", "test", f"VENV={tmp_path / 'fresh-venv'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=30, check=True,
    ).stdout
    builds = [line for line in plan.splitlines() if "mkdocs build" in line]
    assert len(builds) == 1, plan
    # --quiet would hide the warnings that strict mode counts, and let a broken site pass.
    assert "--strict" in builds[0] and "-q" not in builds[0].split()
    assert "--quiet" not in builds[0]


# The API reference renders the docstrings (issue 26): Sphinx roles and `Example::` blocks
# showed literally on the mkdocstrings pages.

LITERAL = re.compile(r":(class|func|meth|mod|attr|data|exc|obj|const):`|^\s*\S.*::\s*$", re.M)


def test_the_reference_renders_roles_as_links_and_examples_as_code(tmp_path: Path) -> None:
    result = _build(tmp_path, {
        "index.md": "# Home\n",
        "ref.md": "# Ref\n\n::: joey.routing.Router\n\n::: joey.declarations.LateDeclaration\n",
    }, ["index.md", "ref.md"])
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "site" / "ref.html").read_text(encoding="utf-8")
    text = re.sub(r"<[^>]+>", "", page)
    assert ":class:" not in text and "Example::" not in text, "a role shows literally"
    # `:class:`LateDeclaration`` in Router's docstring: a link to the class on this page
    assert re.search(r'<a class="autorefs autorefs-internal"[^>]*href="#joey\.declarations\.'
                     r'LateDeclaration"[^>]*><code>LateDeclaration</code></a>', page), page
    # `Example::` and its block: an "Example" admonition around highlighted Python
    assert 'class="admonition example"' in page
    assert 'api</span> <span class="o">=</span> <span class="n">Router</span>' in page


def _griffe_roles() -> ModuleType:
    spec = importlib.util.spec_from_file_location("griffe_roles",
                                                  ROOT / "docs_build" / "griffe_roles.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_docstring_of_the_package_is_rewritten_for_the_reference() -> None:
    """What the reference renders of every docstring: no role or ``::`` left, every example a
    fenced block, every role of a name that exists a cross-reference."""
    griffe = pytest.importorskip("griffe")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    (mkdocstrings,) = (p["mkdocstrings"] for p in config["plugins"] if isinstance(p, dict)
                       and "mkdocstrings" in p)
    assert mkdocstrings["handlers"]["python"]["options"]["extensions"] == [
        "docs_build/griffe_roles.py:SphinxRoles"]
    roles = _griffe_roles()
    source = griffe.load("joey", search_paths=[str(ROOT / "src")])
    package = griffe.load("joey", search_paths=[str(ROOT / "src")],
                          extensions=griffe.load_extensions(roles.SphinxRoles))
    examples = unresolved = 0
    for before, after in zip(_docstrings(source), _docstrings(package), strict=True):
        assert not LITERAL.search(after[1]), f"{after[0]}: {LITERAL.search(after[1])}"
        examples += len(re.findall(r"::\s*$", before[1], re.M))
        assert after[1].count("```python") == len(re.findall(r"::\s*$", before[1], re.M))
        unresolved += after[1].count("<code>") - after[1].count("<autoref ")
    assert examples >= 100
    assert unresolved < 20, "most roles name something that exists: a cross-reference"


def _docstrings(obj: Any, seen: set[str] | None = None) -> list[tuple[str, str]]:
    seen = set() if seen is None else seen
    if obj.path in seen or obj.is_alias:
        return []
    seen.add(obj.path)
    found = [(obj.path, obj.docstring.value)] if obj.docstring is not None else []
    for member in obj.members.values():
        found += _docstrings(member, seen)
    return found


# The built site opens from file:// (issue 26: its navigation opened directory listings), and
# `make docs-serve` serves it.

def test_the_built_site_links_pages_as_html_files(tmp_path: Path) -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    assert config["use_directory_urls"] is False
    result = _build(tmp_path, {"index.md": "# Home\n\n[The other](other.md)\n",
                               "other.md": "# Other page\n"}, ["index.md", "other.md"])
    assert result.returncode == 0, result.stderr
    site = tmp_path / "site"
    assert (site / "other.html").is_file() and not (site / "other").exists()
    page = (site / "index.html").read_text(encoding="utf-8")
    local = [href for href in re.findall(r'href="([^"]+)"', page)
             if not href.startswith(("http:", "https:", "#", "mailto:"))]
    pages = [href for href in local if not href.startswith("assets/")]
    assert "other.html" in pages
    assert [href for href in pages if href.endswith("/") or href in (".", "..")] == []
    # the offline plugin inlines the search index: search works without a server
    assert (site / "search" / "search_index.js").is_file()


def test_the_built_site_navigates_from_file_urls_in_chromium(tmp_path: Path) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("chromium is needed for the browser test (apt-get install chromium)")
    result = _build(tmp_path, {"index.md": "# Home\n", "other.md": "# Other page\n"},
                    ["index.md", "other.md"])
    assert result.returncode == 0, result.stderr
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True,
                                    args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto((tmp_path / "site" / "index.html").as_uri())
            with page.expect_navigation():
                page.click("nav.md-nav--primary a.md-nav__link[href='other.html']")
            assert page.url.endswith("/site/other.html")
            assert page.inner_text("article h1").startswith("Other page")  # not a listing
        finally:
            browser.close()


def test_make_docs_serve_serves_on_loopback(tmp_path: Path) -> None:
    plan = subprocess.run(
        ["make", "-n", "docs-serve", f"VENV={tmp_path / 'fresh-venv'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=30, check=True,
    ).stdout
    (serve,) = [line for line in plan.splitlines() if "mkdocs serve" in line]
    assert "--dev-addr 127.0.0.1:8001" in serve and "--strict" in serve
    # The same command on a small site with the project's configuration: it answers.
    assert _build(tmp_path, {"index.md": "# Home\n", "other.md": "# Other page\n"},
                  ["index.md", "other.md"]).returncode == 0
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mkdocs", "serve", "--strict", "-f", str(tmp_path / "mkdocs.yml"),
         "--dev-addr", f"127.0.0.1:{port}"],
        cwd=ROOT, env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, "mkdocs serve exited"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/other.html",
                                            timeout=5) as answer:
                    assert "Other page" in answer.read().decode()
                    break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "mkdocs serve never answered"
                time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(30)
