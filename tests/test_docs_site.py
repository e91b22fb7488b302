"""The documentation site (mkdocs.yml, `make docs`): strict mode really fails the build on a
broken link, a broken anchor, a page left out of the nav and a broken API reference, and
`make test` builds it.

The real site is built by `make docs` (part of `make test`), not here; these tests build a
two-page site with the project's own configuration, so they prove what that build checks.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

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
    mkdocstrings["handlers"]["python"]["paths"] = [str(ROOT / "src")]
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "-f", str(tmp_path / "mkdocs.yml")],
        capture_output=True, text=True, timeout=120, check=False,
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
    page = (tmp_path / "site" / "ref" / "index.html").read_text(encoding="utf-8")
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
