"""TechEmpower's tests in Joey, written the way its docs show: typed handlers returning
msgspec Structs, the pool an app-scoped dependency, the query count read by a query
extractor, the fortunes page rendered by ``joey.templating``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from operator import itemgetter
from random import randint, sample
from typing import Annotated, Any

import asyncpg
import msgspec

from joey import App, Depends, Query, QueryParams, Request
from joey.templating import TemplateResponse, Templates
from tfb_apps import (
    ADDITIONAL_FORTUNE,
    FORTUNES_SQL,
    FORTUNES_TEMPLATE,
    READ_ROW_SQL,
    ROWS,
    TEMPLATES,
    WRITE_ROW_SQL,
    create_pool,
    query_count,
)


class Message(msgspec.Struct):
    message: str


class World(msgspec.Struct):
    id: int
    randomNumber: int  # TechEmpower's name


async def database() -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool()
    yield pool
    await pool.close()


def _queries(query: QueryParams) -> int:
    return query_count(query.get("queries"))


Pool = Annotated[asyncpg.Pool, Depends(database, scope="app")]
Queries = Annotated[int, Query(extractor=_queries)]


def build_app() -> App:
    app = App()
    # Templates never change while the benchmark runs (docs/templates.md: auto_reload).
    templates = Templates(TEMPLATES, auto_reload=False)
    by_message = itemgetter(1)

    @app.get("/json")
    async def json_() -> Message:
        return Message("Hello, World!")

    @app.get("/plaintext")
    async def plaintext() -> str:
        return "Hello, World!"

    @app.get("/db")
    async def db(pool: Pool) -> World:
        id_ = randint(1, ROWS)
        async with pool.acquire() as connection:
            return World(id_, await connection.fetchval(READ_ROW_SQL, id_))

    # A loop, as every other app here: an `await` inside a comprehension makes the
    # comprehension a coroutine of its own, one more frame to resume at every query.
    @app.get("/queries")
    async def queries(pool: Pool, queries: Queries) -> list[World]:
        worlds = []
        async with pool.acquire() as connection:
            for id_ in sample(range(1, ROWS + 1), queries):
                worlds.append(World(id_, await connection.fetchval(READ_ROW_SQL, id_)))
        return worlds

    @app.get("/fortunes")
    async def fortunes(request: Request, pool: Pool) -> TemplateResponse:
        async with pool.acquire() as connection:
            rows: list[Any] = await connection.fetch(FORTUNES_SQL)
        rows.append((0, ADDITIONAL_FORTUNE))
        rows.sort(key=by_message)
        return await templates.render(request, FORTUNES_TEMPLATE, {"fortunes": rows})

    @app.get("/updates")
    async def updates(pool: Pool, queries: Queries) -> list[World]:
        ids = sorted(sample(range(1, ROWS + 1), queries))
        async with pool.acquire() as connection:
            for id_ in ids:
                await connection.fetchval(READ_ROW_SQL, id_)  # read, as the test requires
            rows = [(id_, randint(1, ROWS)) for id_ in ids]
            await connection.executemany(WRITE_ROW_SQL, rows)
        return [World(id_, number) for id_, number in rows]

    return app
