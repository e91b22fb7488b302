"""TechEmpower's tests in Litestar, with the care of its official entry: typed handlers
returning msgspec Structs (Litestar encodes with msgspec), the pool opened at startup and
injected as application state, the fortunes template loaded once and rendered synchronously
into an HTML response."""

from __future__ import annotations

from operator import itemgetter
from random import randint, sample

import msgspec
from litestar import Litestar, MediaType, get
from litestar.datastructures import State

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


class Message(msgspec.Struct):
    message: str


class World(msgspec.Struct):
    id: int
    randomNumber: int  # TechEmpower's name


@get("/json")
async def json_() -> Message:
    return Message("Hello, World!")


@get("/plaintext", media_type=MediaType.TEXT)
async def plaintext() -> bytes:
    return b"Hello, World!"


@get("/db")
async def db(state: State) -> World:
    id_ = randint(1, ROWS)
    async with state.pool.acquire() as connection:
        return World(id_, await connection.fetchval(READ_ROW_SQL, id_))


@get("/queries")
async def queries(state: State, queries: str | None = None) -> list[World]:
    async with state.pool.acquire() as connection:
        return [World(id_, await connection.fetchval(READ_ROW_SQL, id_))
                for id_ in sample(range(1, ROWS + 1), query_count(queries))]


@get("/fortunes", media_type=MediaType.HTML)
async def fortunes(state: State) -> str:
    async with state.pool.acquire() as connection:
        rows = await connection.fetch(FORTUNES_SQL)
    rows.append((0, ADDITIONAL_FORTUNE))
    rows.sort(key=by_message)
    return TEMPLATE.render(fortunes=rows)


@get("/updates")
async def updates(state: State, queries: str | None = None) -> list[World]:
    ids = sorted(sample(range(1, ROWS + 1), query_count(queries)))
    async with state.pool.acquire() as connection:
        for id_ in ids:
            await connection.fetchval(READ_ROW_SQL, id_)
        worlds = [World(id_, randint(1, ROWS)) for id_ in ids]
        await connection.executemany(WRITE_ROW_SQL, [(w.id, w.randomNumber) for w in worlds])
    return worlds


async def open_pool(app: Litestar) -> None:
    app.state.pool = await create_pool()


async def close_pool(app: Litestar) -> None:
    await app.state.pool.close()


def build_app() -> Litestar:
    return Litestar(
        route_handlers=[json_, plaintext, db, queries, fortunes, updates],
        on_startup=[open_pool],
        on_shutdown=[close_pool],
    )
