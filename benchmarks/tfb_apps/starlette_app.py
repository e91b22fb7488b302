"""TechEmpower's tests in Starlette, with the care of its official entry: plain endpoint
functions, the pool opened by the lifespan and kept on ``app.state``, JSON through a fast
encoder (msgspec, in a ``JSONResponse`` subclass as Starlette's docs show for orjson), the
fortunes template loaded once and rendered synchronously."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from operator import itemgetter
from random import randint, sample
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tfb_apps import (
    ADDITIONAL_FORTUNE,
    FORTUNES_SQL,
    READ_ROW_SQL,
    ROWS,
    WRITE_ROW_SQL,
    create_pool,
    fortunes_template,
    query_count,
)


class FastJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return msgspec.json.encode(content)


TEMPLATE = fortunes_template()
by_message = itemgetter(1)


async def json_(request: Request) -> Response:
    return FastJSONResponse({"message": "Hello, World!"})


async def plaintext(request: Request) -> Response:
    return PlainTextResponse(b"Hello, World!")


async def db(request: Request) -> Response:
    id_ = randint(1, ROWS)
    async with request.app.state.pool.acquire() as connection:
        number = await connection.fetchval(READ_ROW_SQL, id_)
    return FastJSONResponse({"id": id_, "randomNumber": number})


async def queries(request: Request) -> Response:
    count = query_count(request.query_params.get("queries"))
    worlds = []
    async with request.app.state.pool.acquire() as connection:
        for id_ in sample(range(1, ROWS + 1), count):
            number = await connection.fetchval(READ_ROW_SQL, id_)
            worlds.append({"id": id_, "randomNumber": number})
    return FastJSONResponse(worlds)


async def fortunes(request: Request) -> Response:
    async with request.app.state.pool.acquire() as connection:
        rows = await connection.fetch(FORTUNES_SQL)
    rows.append((0, ADDITIONAL_FORTUNE))
    rows.sort(key=by_message)
    return HTMLResponse(TEMPLATE.render(fortunes=rows))


async def updates(request: Request) -> Response:
    count = query_count(request.query_params.get("queries"))
    ids = sorted(sample(range(1, ROWS + 1), count))
    async with request.app.state.pool.acquire() as connection:
        for id_ in ids:
            await connection.fetchval(READ_ROW_SQL, id_)
        rows = [(id_, randint(1, ROWS)) for id_ in ids]
        await connection.executemany(WRITE_ROW_SQL, rows)
    return FastJSONResponse([{"id": id_, "randomNumber": number} for id_, number in rows])


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    app.state.pool = await create_pool()
    yield
    await app.state.pool.close()


def build_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/json", json_),
            Route("/plaintext", plaintext),
            Route("/db", db),
            Route("/queries", queries),
            Route("/fortunes", fortunes),
            Route("/updates", updates),
        ],
        lifespan=lifespan,
    )
