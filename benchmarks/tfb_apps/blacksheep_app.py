"""TechEmpower's tests in BlackSheep, with the care of its official entry: handlers bound by
the router, the pool opened at ``on_start``, JSON bodies encoded once into ``Content`` (here
by msgspec), the fortunes template loaded once and rendered synchronously.

Each app gets its own ``Router``: BlackSheep's default router is process-wide.
"""

from __future__ import annotations

from operator import itemgetter
from random import randint, sample
from typing import Any

import msgspec
from blacksheep import Application, Content, Request, Response
from blacksheep.server.responses import html
from blacksheep.server.routing import Router

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

TEMPLATE = fortunes_template()
by_message = itemgetter(1)
encode = msgspec.json.encode


def json_response(data: Any) -> Response:
    return Response(200, None, Content(b"application/json", encode(data)))


def _queries(request: Request) -> int:
    values = request.query.get("queries")
    return query_count(values[0] if values else None)


def build_app() -> Application:
    router = Router()
    app = Application(router=router)
    pools: list[Any] = []

    async def open_pool(application: Application) -> None:
        pools.append(await create_pool())

    async def close_pool(application: Application) -> None:
        await pools.pop().close()

    app.on_start += open_pool
    app.on_stop += close_pool

    @router.get("/json")
    async def json_() -> Response:
        return json_response({"message": "Hello, World!"})

    @router.get("/plaintext")
    async def plaintext() -> Response:
        return Response(200, None, Content(b"text/plain", b"Hello, World!"))

    @router.get("/db")
    async def db() -> Response:
        id_ = randint(1, ROWS)
        async with pools[0].acquire() as connection:
            number = await connection.fetchval(READ_ROW_SQL, id_)
        return json_response({"id": id_, "randomNumber": number})

    @router.get("/queries")
    async def queries(request: Request) -> Response:
        worlds = []
        async with pools[0].acquire() as connection:
            for id_ in sample(range(1, ROWS + 1), _queries(request)):
                number = await connection.fetchval(READ_ROW_SQL, id_)
                worlds.append({"id": id_, "randomNumber": number})
        return json_response(worlds)

    @router.get("/fortunes")
    async def fortunes() -> Response:
        async with pools[0].acquire() as connection:
            rows = await connection.fetch(FORTUNES_SQL)
        rows.append((0, ADDITIONAL_FORTUNE))
        rows.sort(key=by_message)
        return html(TEMPLATE.render(fortunes=rows))

    @router.get("/updates")
    async def updates(request: Request) -> Response:
        ids = sorted(sample(range(1, ROWS + 1), _queries(request)))
        async with pools[0].acquire() as connection:
            for id_ in ids:
                await connection.fetchval(READ_ROW_SQL, id_)
            rows = [(id_, randint(1, ROWS)) for id_ in ids]
            await connection.executemany(WRITE_ROW_SQL, rows)
        return json_response([{"id": id_, "randomNumber": number} for id_, number in rows])

    return app
