"""A griffe extension (mkdocs.yml): Joey's docstrings, written with Sphinx roles, render.

The docstrings are written for readers of the source and for ``help()``: cross-references as
Sphinx roles (``:class:`Request```, ``:meth:`~joey.app.App.route```) and examples as the
indented block after a line ending in ``::`` (``Example::``), which tests/test_docstrings.py
runs. mkdocstrings reads Markdown, where both showed literally. When griffe has loaded the
package, this rewrites each docstring once, before it is parsed:

- a role becomes a cross-reference to the object it names, resolved as Python would from
  where the docstring is (the object's own members, its parents', its module's names and
  imports, then ``joey``'s exports), in code font. The reference is optional: when that object
  has no page in the reference, it shows as code, without a link (a wrong name never breaks the
  build; it shows unlinked). ``~`` shows only the last part, ``title <target>`` the title.
- ``Example::`` and its block become an "Example" admonition holding a fenced Python block;
  any other line ending in ``::`` ends in ``:`` and its block is fenced.

The source keeps the Sphinx form, so ``help()``, editors and the docstring tests are unchanged.
"""

from __future__ import annotations

import html
import re
import textwrap
from typing import Any

import griffe

ROLE = re.compile(
    r":(?:py:)?(?P<role>class|func|meth|mod|attr|data|exc|obj|const):`(?P<text>[^`]+)`"
)
EXPLICIT_TITLE = re.compile(r"^(?P<title>.+?)\s*<(?P<target>[^<>]+)>$")
PACKAGE = "joey"


def _resolve(obj: griffe.Object, name: str) -> str | None:
    """The full path of ``name`` as seen from ``obj``'s docstring, or ``None``."""
    first, _, rest = name.partition(".")
    scopes: list[griffe.Object | griffe.Alias] = []
    scope: griffe.Object | None = obj
    while scope is not None:
        scopes.append(scope)
        scope = scope.parent
    root = scopes[-1]
    found: griffe.Object | griffe.Alias | None = None
    if first == root.name:
        found = root
    else:
        for candidate in scopes:
            if first in candidate.members:
                found = candidate.members[first]
                break
    if found is None:
        return None
    for part in rest.split(".") if rest else []:
        try:
            found = found.members[part]
        except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
            return None
    if isinstance(found, griffe.Alias):
        try:
            return found.final_target.path
        except (griffe.AliasResolutionError, griffe.CyclicAliasError):
            return found.target_path
    return found.path


def _role(obj: griffe.Object, match: re.Match[str]) -> str:
    text = match["text"].strip()
    explicit = EXPLICIT_TITLE.match(text)
    if explicit:
        title, target = explicit["title"], explicit["target"]
    else:
        target = text.lstrip("~")
        title = target.rsplit(".", 1)[-1] if text.startswith("~") else target
    target = target.lstrip("~").rstrip("()")
    if match["role"] in ("func", "meth") and not title.endswith(")"):
        title += "()"
    path = _resolve(obj, target)
    code = f"<code>{html.escape(title)}</code>"
    if path is None:
        return code
    return f'<autoref identifier="{html.escape(path)}" optional>{code}</autoref>'


def _examples(text: str) -> str:
    """Each ``...::`` line's indented block as a fenced Python block (``Example::``: an
    "Example" admonition around it)."""
    lines = text.splitlines()
    out: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line.rstrip().endswith("::"):
            out.append(line)
            continue
        block: list[str] = []
        while index < len(lines) and (not lines[index].strip() or lines[index].startswith(" ")):
            block.append(lines[index])
            index += 1
        trailing = 0
        while block and not block[-1].strip():
            block.pop()
            trailing += 1
        code = textwrap.dedent("\n".join(block)).strip("\n").splitlines()
        fenced = ["```python", *code, "```"]
        if line.strip() == "Example::":
            out += ["!!! example", "", *("    " + c if c else "" for c in fenced)]
        else:
            out += [line.rstrip()[:-1], "", *fenced]
        out += [""] * max(trailing, 1)
    return "\n".join(out)


class SphinxRoles(griffe.Extension):
    """Rewrites every docstring of the package once it is loaded (see the module docstring)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        if pkg.name == PACKAGE:
            self._rewrite(pkg, seen=set())

    def _rewrite(self, obj: griffe.Object, seen: set[str]) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring is not None:
            value = _examples(obj.docstring.value)
            obj.docstring.value = ROLE.sub(lambda match: _role(obj, match), value)
        for member in obj.members.values():
            if not isinstance(member, griffe.Alias):
                self._rewrite(member, seen)
