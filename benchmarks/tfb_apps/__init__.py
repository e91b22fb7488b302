"""TechEmpower's six test types, one module per framework (issue 29, ``benchmarks/tfb.py``).

Every app serves ``/json``, ``/plaintext``, ``/db``, ``/queries?queries=N``, ``/fortunes`` and
``/updates?queries=N`` to TechEmpower's requirements, each in its framework's own idiom, and
shares with the others only what the comparison needs to hold constant: the database it reads
(``TFB_DATABASE_URL``, set by the bench), the pool settings, the SQL, the fortunes template,
and the rules of the query count. Each module defines ``build_app()``; the app opens its pool
at lifespan startup and closes it at shutdown.

- ``/db``: one random row of ``world`` (ids 1 to 10,000), ``{"id": .., "randomNumber": ..}``;
- ``/queries``: that many rows, each read by its own query (one after the other, on one
  connection), as a JSON array; ``queries`` is clamped to 1..500, and a missing, empty or
  non-numeric value counts as 1;
- ``/fortunes``: every row of ``fortune``, plus one added at request time, sorted by message,
  rendered with the template below (autoescaped) as ``text/html; charset=utf-8``;
- ``/updates``: like ``/queries``, then each row given a new random number, written back
  (one batched ``executemany``, in id order so that concurrent requests cannot deadlock),
  and the updated rows answered.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import Any

RAW = "raw"
JOEY = "joey"
PEERS = ("starlette", "fastapi", "litestar", "blacksheep")
FRAMEWORKS = (RAW, JOEY, *PEERS)

# The DSN of the bench's private PostgreSQL (tfb_postgres.py), read when a pool opens.
DATABASE_ENV = "TFB_DATABASE_URL"
# Set (to 1) by tfb.py for the framework's own share: every app gets the stand-in pool.
STAND_IN_ENV = "TFB_STAND_IN"
# The same pool for every app: opened full at startup, so no request pays for a connection.
POOL_SIZE = 16

READ_ROW_SQL = 'SELECT "randomnumber" FROM "world" WHERE "id" = $1'
FORTUNES_SQL = 'SELECT "id", "message" FROM "fortune"'
WRITE_ROW_SQL = 'UPDATE "world" SET "randomnumber" = $2 WHERE "id" = $1'

ROWS = 10_000
MAX_QUERIES = 500
ADDITIONAL_FORTUNE = "Additional fortune added at request time."

TEMPLATES = Path(__file__).resolve().parent / "templates"
FORTUNES_TEMPLATE = "fortunes.html"


def database_url() -> str:
    try:
        return os.environ[DATABASE_ENV]
    except KeyError:
        raise RuntimeError(f"{DATABASE_ENV} is not set: the TechEmpower apps need the bench's"
                           " database (benchmarks/tfb.py starts one)") from None


async def create_pool() -> Any:
    """The pool every app uses: asyncpg, ``POOL_SIZE`` connections opened at once (or,
    with ``TFB_STAND_IN`` set, the stand-in of ``stand_in.py``: no database at all)."""
    if os.environ.get(STAND_IN_ENV):
        from tfb_apps.stand_in import StandInPool

        return StandInPool()
    import asyncpg

    return await asyncpg.create_pool(database_url(), min_size=POOL_SIZE, max_size=POOL_SIZE)


def query_count(value: str | None) -> int:
    """TechEmpower's rule for ``queries``: an integer clamped to 1..500, anything else 1."""
    try:
        count = int(value) if value else 1
    except ValueError:
        return 1
    return min(max(count, 1), MAX_QUERIES)


def fortunes_template() -> Any:
    """The fortunes template for apps that render with Jinja2 directly: loaded once, with
    autoescaping on (what their official TechEmpower entries do)."""
    import jinja2

    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)
    return environment.get_template(FORTUNES_TEMPLATE)


def load(framework: str) -> ModuleType:
    if framework not in FRAMEWORKS:
        raise ValueError(f"unknown framework {framework!r}: one of {', '.join(FRAMEWORKS)}")
    return importlib.import_module(f"tfb_apps.{framework}_app")
