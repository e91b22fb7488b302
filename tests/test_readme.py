"""The README's install instructions work: Joey is not on the package index."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_never_installs_joey_from_the_index() -> None:
    # `pip install joey` / `pip install 'joey[server]'` would ask PyPI, which has no such Joey.
    # (`'joey[server] @ file:///...whl'` names a local wheel: fine.)
    from_index = re.compile(
        r"pip install\s+(-U\s+)?['\"]?joey(\[[a-z,]+\])?['\"]?(?!\s*@)(\s|`|$)", re.M
    )
    assert not from_index.search(README), from_index.search(README)


def test_readme_says_how_to_install_from_a_checkout_or_a_wheel() -> None:
    section = README.split("## Installing Joey in your own project", 1)[1].split("\n## ", 1)[0]
    assert "pip install -e '/path/to/joey[server]'" in section
    assert "pip wheel --no-deps -w /path/to/joey/dist /path/to/joey" in section
    assert "dist/joey-0.1.0-py3-none-any.whl" in section
    init = (ROOT / "src" / "joey" / "__init__.py").read_text(encoding="utf-8")
    version = re.search(r'^__version__ = "([^"]+)"', init, re.M)
    assert version is not None and f"joey-{version.group(1)}-py3" in section  # kept in step
    for extra in ("server", "forms", "sessions", "redis", "compression", "testing", "all"):
        assert f"`{extra}`" in section
