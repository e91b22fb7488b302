"""The public API is pinned: tests/public_api.txt lists every name exported from ``joey`` and
from each public module, with signatures, and this test compares it with the code. A change
to the API is then a diff a reviewer sees; after a deliberate one, run ``make api-snapshot``
(``PYTHONPATH=src python -m tests.public_api --write``) and commit the new file."""

from __future__ import annotations

import difflib
import importlib
import subprocess
import sys

import pytest

import joey.requests

from .public_api import SNAPSHOT, parse, public_modules, render, snapshot, unlisted

REWRITE = "make api-snapshot (PYTHONPATH=src python -m tests.public_api --write)"

# The compiled build's classes and functions are extension types, whose signatures Python
# reads differently; the pure build is the one the snapshot describes.
pytestmark = pytest.mark.skipif(
    (joey.requests.__file__ or "").endswith((".so", ".pyd")),
    reason="the snapshot describes the pure-Python build",
)


def test_the_public_api_matches_the_snapshot() -> None:
    current, skipped = snapshot(skip_missing_extras=True)
    expected = {name: lines for name, lines in parse(SNAPSHOT.read_text("utf-8")).items()
                if name not in skipped}
    if current != expected:
        diff = "\n".join(difflib.unified_diff(
            render(expected).splitlines(), render(current).splitlines(),
            "tests/public_api.txt (the reviewed API)", "the code", lineterm="", n=1))
        pytest.fail(f"The public API changed. If that is deliberate, run {REWRITE} and commit "
                    f"tests/public_api.txt with the change.\n{diff}", pytrace=False)


def test_every_public_module_declares_its_exports() -> None:
    missing = []
    for name in public_modules():
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError:  # an optional package not installed here
            continue
        if not isinstance(getattr(module, "__all__", None), list | tuple):
            missing.append(name)
    assert not missing, f"add __all__ to: {', '.join(missing)}"


def test_what_a_module_defines_publicly_it_exports() -> None:
    # A class or function without a leading underscore is API: list it in __all__ (and the
    # snapshot), or name it _private.
    found = {}
    for name in public_modules():
        try:
            names = unlisted(name)
        except ModuleNotFoundError:
            continue
        if names:
            found[name] = names
    assert not found, f"export these in __all__ or rename them with a leading _: {found}"


def test_star_import_gives_all_and_no_deprecated_name() -> None:
    code = ("import warnings; warnings.simplefilter('error')\n"
            "from joey import *\n"
            "import joey\n"
            "names = {n for n in dir() if not n.startswith('_')} - {'warnings', 'joey'}\n"
            "assert names == set(joey.__all__), names ^ set(joey.__all__)\n"
            "assert 'PayloadTooLarge' not in names and 'TextResponse' not in names\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr

