"""The benchmark endpoints in idiomatic Litestar (msgspec Struct, typed parameters).

The middlewares are plain ASGI middleware factories, the lightest form Litestar documents.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec
from litestar import Litestar, MediaType, WebSocket, get, post, websocket
from litestar.types import ASGIApp, Receive, Scope, Send


class Item(msgspec.Struct):
    name: str
    price: float
    tags: list[str] = []


@get("/plaintext", media_type=MediaType.TEXT)
async def plaintext() -> str:
    return "Hello, World!"


@get("/json")
async def json_() -> dict[str, str]:
    return {"message": "Hello, World!"}


@get("/users/{id:int}")
async def user(id: int) -> dict[str, int]:
    return {"id": id}


@get("/search")
async def search(q: str, limit: int = 10) -> dict[str, object]:
    return {"q": q, "limit": limit}


@post("/items", status_code=200)
async def create(data: Item) -> Item:
    return data


@websocket("/ws")
async def echo(socket: WebSocket) -> None:
    await socket.accept()
    async for message in socket.iter_data(mode="text"):
        await socket.send_text(message)


def build_app() -> Litestar:
    return Litestar(route_handlers=[plaintext, json_, user, search, create, echo])


def _route_handler(index: int) -> Callable[[int], Awaitable[str]]:
    async def handler(item_id: int) -> str:
        return f"r{index}:{item_id}"

    return handler


def build_routes_app(n: int) -> Litestar:
    handlers = [
        get(f"/r{i}/items/{{item_id:int}}", media_type=MediaType.TEXT, name=f"r{i}")(
            _route_handler(i)
        )
        for i in range(n)
    ]
    return Litestar(route_handlers=handlers)


def _resource_handlers(name: str) -> tuple[Callable[..., Awaitable[str]], ...]:
    async def listing() -> str:
        return name

    async def item(item_id: int) -> str:
        return f"{name}:{item_id}"

    async def nested(item_id: int, sub_id: int) -> str:
        return f"{name}:{item_id}:{sub_id}"

    return listing, item, nested


def build_prefixed_app(resources: int) -> Litestar:
    handlers = []
    for i in range(resources):
        listing, item, nested = _resource_handlers(f"res{i}")
        base = f"/api/v1/res{i}"
        handlers += [
            get(base, media_type=MediaType.TEXT, name=f"res{i}-list")(listing),
            get(f"{base}/{{item_id:int}}", media_type=MediaType.TEXT, name=f"res{i}-item")(item),
            get(f"{base}/{{item_id:int}}/sub/{{sub_id:int}}", media_type=MediaType.TEXT,
                name=f"res{i}-nested")(nested),
        ]
    return Litestar(route_handlers=handlers)


def _noop_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        await app(scope, receive, send)

    return middleware


def build_middleware_app() -> Litestar:
    return Litestar(route_handlers=[plaintext], middleware=[_noop_middleware] * 3)


def build_caching_app() -> Litestar:
    """The catalog computed on every request, and from Litestar's response cache (its
    default: the in-memory store, keyed by path and query)."""
    from litestar.config.response_cache import ResponseCacheConfig
    from scenarios import catalog

    @get("/catalog")
    async def computed() -> list[dict[str, object]]:
        return catalog()

    @get("/catalog/cached", cache=60)
    async def cached() -> list[dict[str, object]]:
        return catalog()

    return Litestar(route_handlers=[computed, cached], response_cache_config=ResponseCacheConfig())
