"""The baseline: hand-written ASGI functions doing the same work as the frameworks, no framework.

It is what a careful programmer would write by hand: a dict for static paths, msgspec for JSON,
``parse_qsl`` for the query string, body validated into a Struct. No caching of responses.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import msgspec

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Handler = Callable[[Scope, Receive, Send], Awaitable[None]]


class Item(msgspec.Struct):
    name: str
    price: float
    tags: list[str] = []


_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]
_JSON = [(b"content-type", b"application/json")]
_encode = msgspec.json.encode
_decode_item = msgspec.json.Decoder(Item).decode


async def _respond(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    await _respond(send, 404, _TEXT, b"Not Found")


async def _plaintext(scope: Scope, receive: Receive, send: Send) -> None:
    await _respond(send, 200, _TEXT, b"Hello, World!")


async def _json(scope: Scope, receive: Receive, send: Send) -> None:
    await _respond(send, 200, _JSON, _encode({"message": "Hello, World!"}))


async def _user(scope: Scope, receive: Receive, send: Send) -> None:
    raw_id = scope["path"][len("/users/") :]
    if not raw_id.isdigit():
        return await _not_found(scope, receive, send)
    await _respond(send, 200, _JSON, _encode({"id": int(raw_id)}))


async def _search(scope: Scope, receive: Receive, send: Send) -> None:
    query = dict(parse_qsl(scope["query_string"].decode("latin-1")))
    try:
        result = {"q": query["q"], "limit": int(query.get("limit", 10))}
    except (KeyError, ValueError):
        return await _respond(send, 422, _TEXT, b"invalid query")
    await _respond(send, 200, _JSON, _encode(result))


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _create_item(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["method"] != "POST":
        return await _respond(send, 405, _TEXT, b"Method Not Allowed")
    content_type = next((v for k, v in scope["headers"] if k == b"content-type"), b"")
    if not content_type.startswith(b"application/json"):
        return await _respond(send, 415, _TEXT, b"Unsupported Media Type")
    try:
        item = _decode_item(await _read_body(receive))
    except msgspec.DecodeError as exc:
        return await _respond(send, 422, _TEXT, str(exc).encode())
    await _respond(send, 200, _JSON, _encode(item))


async def _echo(scope: Scope, receive: Receive, send: Send) -> None:
    if (await receive())["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        await send({"type": "websocket.send", "text": message.get("text")})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def build_app() -> ASGIApp:
    static: dict[str, Handler] = {
        "/plaintext": _plaintext,
        "/json": _json,
        "/search": _search,
        "/items": _create_item,
    }

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            handler = static.get(path)
            if handler is None:
                handler = _user if path.startswith("/users/") else _not_found
            await handler(scope, receive, send)
        elif kind == "websocket" and scope["path"] == "/ws":
            await _echo(scope, receive, send)
        elif kind == "lifespan":
            await _lifespan(receive, send)

    return app


def build_routes_app(n: int) -> ASGIApp:
    # /r{i}/items/{item_id:int}: the first segment picks the route in one dict lookup.
    routes = {f"r{i}": f"r{i}:" for i in range(n)}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return await _lifespan(receive, send)
        parts = scope["path"].split("/")  # ["", "r{i}", "items", "{item_id}"]
        prefix = routes.get(parts[1]) if len(parts) == 4 and parts[2] == "items" else None
        if prefix is None or not parts[3].isdigit():
            return await _not_found(scope, receive, send)
        await _respond(send, 200, _TEXT, f"{prefix}{int(parts[3])}".encode())

    return app


def build_prefixed_app(resources: int) -> ASGIApp:
    # /api/v1/res{i}[/{item_id:int}[/sub/{sub_id:int}]]: split once, one dict lookup.
    names = {f"res{i}" for i in range(resources)}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return await _lifespan(receive, send)
        parts = scope["path"].split("/")  # ["", "api", "v1", name, item_id, "sub", sub_id]
        if len(parts) < 4 or parts[1] != "api" or parts[2] != "v1" or parts[3] not in names:
            return await _not_found(scope, receive, send)
        name, rest = parts[3], parts[4:]
        if not rest:
            body = name
        elif len(rest) == 1 and rest[0].isdigit():
            body = f"{name}:{int(rest[0])}"
        elif len(rest) == 3 and rest[1] == "sub" and rest[0].isdigit() and rest[2].isdigit():
            body = f"{name}:{int(rest[0])}:{int(rest[2])}"
        else:
            return await _not_found(scope, receive, send)
        await _respond(send, 200, _TEXT, body.encode())

    return app


def _noop_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        await app(scope, receive, send)

    return middleware


def build_middleware_app() -> ASGIApp:
    app = build_app()
    for _ in range(3):
        app = _noop_middleware(app)
    return app
