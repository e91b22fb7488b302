"""The README's install instructions, its extras and its list of pages follow pyproject.toml
and mkdocs.yml (every install line of the README and docs/: tests/test_install_docs.py)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_says_how_to_install_from_a_checkout_or_a_wheel() -> None:
    section = _section("## Installing Joey in your own project")
    assert "pip install -e '/path/to/joey[server]'" in section
    assert "pip wheel --no-deps -w /path/to/joey/dist /path/to/joey" in section
    assert "make -C /path/to/joey dist" in section
    init = (ROOT / "src" / "joey" / "__init__.py").read_text(encoding="utf-8")
    version = re.search(r'^__version__ = "([^"]+)"', init, re.M)
    assert version is not None and f"joey-{version.group(1)}-py3-none-any.whl[server]" in section
    assert "pip install 'joey[server]'   # once Joey is published on PyPI; not yet" in section


def _section(heading: str) -> str:
    return README.split(heading + "\n", 1)[1].split("\n## ", 1)[0]


def test_readme_lists_every_extra_of_pyproject() -> None:
    """The extras table names each extra of pyproject.toml once, and nothing else."""
    table = re.findall(r"^\| `([a-z-]+)` \|", _section("## Installing Joey in your own project"),
                       re.M)
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))[
        "project"]["optional-dependencies"]
    assert sorted(table) == sorted(extras), (
        "README's extras table and pyproject.toml's [project.optional-dependencies] differ: "
        f"only in README {sorted(set(table) - set(extras))}, "
        f"only in pyproject {sorted(set(extras) - set(table))}")
    installation = (ROOT / "docs" / "installation.md").read_text(encoding="utf-8")
    assert sorted(re.findall(r"^\| `([a-z-]+)` \|", installation, re.M)) == sorted(extras)


def _nav_pages(nav: list[object]) -> list[str]:
    """The pages of mkdocs.yml's nav, in order."""
    pages: list[str] = []
    for item in nav:
        if isinstance(item, str):
            pages.append(item)
        elif isinstance(item, dict):
            for value in item.values():
                pages += [value] if isinstance(value, str) else _nav_pages(value)
    return pages


def test_readme_lists_every_page_of_the_site_in_its_order() -> None:
    """The Documentation section links every page of mkdocs.yml's nav, in the nav's order."""
    nav = _nav_pages(yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))["nav"])
    linked = re.findall(r"\]\(docs/([^)#]+\.md)\)", _section("## Documentation"))
    missing = [page for page in nav if page not in linked]
    assert not missing, f"add to README's Documentation section: {missing}"
    assert linked == nav, f"README links {linked}, the nav (mkdocs.yml) is {nav}"
