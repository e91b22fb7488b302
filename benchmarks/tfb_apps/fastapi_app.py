"""TechEmpower's tests in FastAPI, the way its docs now recommend for speed: pydantic return
types (FastAPI serializes them to JSON bytes directly, no custom response class), the pool
opened by the lifespan and handed to requests as lifespan state, the fortunes page rendered
by ``Jinja2Templates``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from operator import itemgetter
from random import randint, sample
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel

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


class Message(BaseModel):
    message: str


class World(BaseModel):
    id: int
    randomNumber: int  # TechEmpower's name


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    pool = await create_pool()
    yield {"pool": pool}
    await pool.close()


def build_app() -> FastAPI:
    app = FastAPI(lifespan=lifespan)
    templates = Jinja2Templates(directory=TEMPLATES)
    by_message = itemgetter(1)

    @app.get("/json")
    async def json_() -> Message:
        return Message(message="Hello, World!")

    @app.get("/plaintext", response_class=PlainTextResponse)
    async def plaintext() -> PlainTextResponse:
        return PlainTextResponse(b"Hello, World!")

    @app.get("/db")
    async def db(request: Request) -> World:
        id_ = randint(1, ROWS)
        async with request.state.pool.acquire() as connection:
            number = await connection.fetchval(READ_ROW_SQL, id_)
        return World(id=id_, randomNumber=number)

    @app.get("/queries")
    async def queries(request: Request, queries: str | None = None) -> list[World]:
        worlds = []
        async with request.state.pool.acquire() as connection:
            for id_ in sample(range(1, ROWS + 1), query_count(queries)):
                number = await connection.fetchval(READ_ROW_SQL, id_)
                worlds.append(World(id=id_, randomNumber=number))
        return worlds

    @app.get("/fortunes", response_class=HTMLResponse)
    async def fortunes(request: Request) -> HTMLResponse:
        async with request.state.pool.acquire() as connection:
            rows = await connection.fetch(FORTUNES_SQL)
        rows.append((0, ADDITIONAL_FORTUNE))
        rows.sort(key=by_message)
        return templates.TemplateResponse(request, FORTUNES_TEMPLATE, {"fortunes": rows})

    @app.get("/updates")
    async def updates(request: Request, queries: str | None = None) -> list[World]:
        ids = sorted(sample(range(1, ROWS + 1), query_count(queries)))
        async with request.state.pool.acquire() as connection:
            for id_ in ids:
                await connection.fetchval(READ_ROW_SQL, id_)
            rows = [(id_, randint(1, ROWS)) for id_ in ids]
            await connection.executemany(WRITE_ROW_SQL, rows)
        return [World(id=id_, randomNumber=number) for id_, number in rows]

    return app
