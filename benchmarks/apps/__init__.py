"""One module per framework, each serving the endpoints of ``scenarios.py`` idiomatically.

Each module defines three builders; a builder that raises ``NotImplementedError`` marks its
scenarios "n/a" for that framework:

- ``build_app()``: plaintext, JSON, ``/users/{id:int}``, ``/search``, ``POST /items``, ``/ws``;
- ``build_routes_app(n)``: ``n`` routes ``/r{i}/items/{item_id:int}`` answering ``r{i}:{item_id}``;
- ``build_middleware_app()``: ``/plaintext`` behind three no-op middlewares.

Optional builders, for what only some frameworks have built in (a framework without one shows
"n/a"): ``build_security_app()``, ``build_ratelimit_app()``, and ``build_caching_app()``:
``/catalog`` computed on every request and ``/catalog/cached`` answered from the framework's
own response cache (issue 27).

Joey has two columns with one app module: "joey", the pure build (the editable install of
``benchmarks/.venv``), and "joey-compiled", the wheel ``make compiled`` builds, run under its own
interpreter (``benchmarks/.venv-compiled``, see :func:`interpreter`). :func:`load` checks that
each column imports the build it is named after, and raises otherwise.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType

RAW = "raw"
JOEY = "joey"
JOEY_COMPILED = "joey-compiled"
JOEY_BUILDS = (JOEY, JOEY_COMPILED)
PEERS = ("starlette", "fastapi", "litestar", "blacksheep", "falcon")
FRAMEWORKS = (RAW, JOEY, JOEY_COMPILED, *PEERS)

# The compiled column's interpreter: `make bench-compiled` builds this venv.
COMPILED_VENV = Path(__file__).resolve().parents[1] / ".venv-compiled"
COMPILED_PYTHON = COMPILED_VENV / "bin" / "python"

# What a user's app module imports first: timed by the startup section.
IMPORTS = {
    RAW: "import msgspec",
    JOEY: "import joey",
    JOEY_COMPILED: "import joey",
    "starlette": "from starlette.applications import Starlette",
    "fastapi": "from fastapi import FastAPI",
    "litestar": "from litestar import Litestar",
    "blacksheep": "from blacksheep import Application",
    "falcon": "import falcon.asgi",
}

# The distribution whose version RESULTS.md records for each framework.
DISTRIBUTIONS = {RAW: "msgspec", JOEY: "joey", **{p: p for p in PEERS}}

# A module that `make compiled` compiles: its file tells which build an interpreter imports.
PROBE_MODULE = "joey._engine.tree"


def interpreter(framework: str) -> str:
    """The Python that runs ``framework``'s workers and servers."""
    return str(COMPILED_PYTHON) if framework == JOEY_COMPILED else sys.executable


def expects_compiled(framework: str) -> bool:
    """Whether ``framework``'s column must import compiled Joey.

    The suite run against the compiled wheel (``make test-compiled``, which sets
    ``JOEY_EXPECT_COMPILED=1``) runs the smoke benchmark too: there the "joey" column can only
    be the compiled build, as the interpreter has no other.
    """
    return framework == JOEY_COMPILED or os.environ.get("JOEY_EXPECT_COMPILED") == "1"


def joey_build() -> tuple[bool, str]:
    """Whether this interpreter's Joey is compiled, and the probe module's file."""
    module = importlib.import_module(PROBE_MODULE)
    path = str(module.__file__)
    return not path.endswith(".py"), path


def check_build(framework: str) -> None:
    """Raise unless this interpreter imports the Joey build ``framework``'s column is named for."""
    compiled, path = joey_build()
    want = expects_compiled(framework)
    if compiled != want:
        raise RuntimeError(
            f"the {framework} column must run {'compiled' if want else 'pure'} Joey, but"
            f" {sys.executable} imports {PROBE_MODULE} from {path}"
        )


def load(framework: str) -> ModuleType:
    name = JOEY if framework in JOEY_BUILDS else framework  # one app module, two builds
    module = importlib.import_module(f"apps.{name}_app")
    if framework in JOEY_BUILDS:
        check_build(framework)
    return module
