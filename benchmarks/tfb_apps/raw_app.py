"""The floor: one hand-written ASGI function doing the six tests' work with no framework
(a dict of paths, ``parse_qsl``, msgspec, the Jinja2 template rendered synchronously). What
is left of a framework's cost per request once this app's is taken away is the framework's
own share: where it is small, no framework can lead by much."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from operator import itemgetter
from random import randint, sample
from typing import Any
from urllib.parse import parse_qsl

import msgspec

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

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

TEMPLATE = fortunes_template()
by_message = itemgetter(1)
encode = msgspec.json.encode
_JSON = b"application/json"
_TEXT = b"text/plain"
_HTML = b"text/html; charset=utf-8"


async def _respond(send: Send, content_type: bytes, body: bytes, status: int = 200) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _queries(scope: Scope) -> int:
    query = dict(parse_qsl(scope["query_string"].decode("latin-1")))
    return query_count(query.get("queries"))


class RawApp:
    def __init__(self) -> None:
        self.pool: Any = None
        self.routes: dict[str, Callable[[Scope, Send], Awaitable[None]]] = {
            "/json": self.json, "/plaintext": self.plaintext, "/db": self.db,
            "/queries": self.queries, "/fortunes": self.fortunes, "/updates": self.updates,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        handler = self.routes.get(scope["path"])
        if handler is None:
            await _respond(send, _TEXT, b"Not Found", 404)
        else:
            await handler(scope, send)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.pool = await create_pool()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def json(self, scope: Scope, send: Send) -> None:
        await _respond(send, _JSON, encode({"message": "Hello, World!"}))

    async def plaintext(self, scope: Scope, send: Send) -> None:
        await _respond(send, _TEXT, b"Hello, World!")

    async def db(self, scope: Scope, send: Send) -> None:
        id_ = randint(1, ROWS)
        async with self.pool.acquire() as connection:
            number = await connection.fetchval(READ_ROW_SQL, id_)
        await _respond(send, _JSON, encode({"id": id_, "randomNumber": number}))

    async def queries(self, scope: Scope, send: Send) -> None:
        worlds = []
        async with self.pool.acquire() as connection:
            for id_ in sample(range(1, ROWS + 1), _queries(scope)):
                number = await connection.fetchval(READ_ROW_SQL, id_)
                worlds.append({"id": id_, "randomNumber": number})
        await _respond(send, _JSON, encode(worlds))

    async def fortunes(self, scope: Scope, send: Send) -> None:
        async with self.pool.acquire() as connection:
            rows = await connection.fetch(FORTUNES_SQL)
        rows.append((0, ADDITIONAL_FORTUNE))
        rows.sort(key=by_message)
        await _respond(send, _HTML, TEMPLATE.render(fortunes=rows).encode())

    async def updates(self, scope: Scope, send: Send) -> None:
        ids = sorted(sample(range(1, ROWS + 1), _queries(scope)))
        async with self.pool.acquire() as connection:
            for id_ in ids:
                await connection.fetchval(READ_ROW_SQL, id_)
            rows = [(id_, randint(1, ROWS)) for id_ in ids]
            await connection.executemany(WRITE_ROW_SQL, rows)
        await _respond(send, _JSON, encode([{"id": i, "randomNumber": n} for i, n in rows]))


def build_app() -> RawApp:
    return RawApp()
