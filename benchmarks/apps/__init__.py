"""One module per framework, each serving the endpoints of ``scenarios.py`` idiomatically.

Each module defines three builders; a builder that raises ``NotImplementedError`` marks its
scenarios "n/a" for that framework:

- ``build_app()``: plaintext, JSON, ``/users/{id:int}``, ``/search``, ``POST /items``, ``/ws``;
- ``build_routes_app(n)``: ``n`` routes ``/r{i}/items/{item_id:int}`` answering ``r{i}:{item_id}``;
- ``build_middleware_app()``: ``/plaintext`` behind three no-op middlewares.
"""

from __future__ import annotations

import importlib
from types import ModuleType

RAW = "raw"
JOEY = "joey"
PEERS = ("starlette", "fastapi", "litestar", "blacksheep", "falcon")
FRAMEWORKS = (RAW, JOEY, *PEERS)

# What a user's app module imports first: timed by the startup section.
IMPORTS = {
    RAW: "import msgspec",
    JOEY: "import joey",
    "starlette": "from starlette.applications import Starlette",
    "fastapi": "from fastapi import FastAPI",
    "litestar": "from litestar import Litestar",
    "blacksheep": "from blacksheep import Application",
    "falcon": "import falcon.asgi",
}

# The distribution whose version RESULTS.md records for each framework.
DISTRIBUTIONS = {RAW: "msgspec", JOEY: "joey", **{p: p for p in PEERS}}


def load(framework: str) -> ModuleType:
    return importlib.import_module(f"apps.{framework}_app")
