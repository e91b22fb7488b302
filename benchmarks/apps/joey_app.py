"""The benchmark endpoints written the way the Joey docs show them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from joey import App, PlainTextResponse, Request, Response, WebSocket


class Item(msgspec.Struct):
    name: str
    price: float
    tags: list[str] = []


def build_app() -> App:
    app = App()

    @app.get("/plaintext")
    async def plaintext() -> PlainTextResponse:
        return PlainTextResponse("Hello, World!")

    @app.get("/json")
    async def json_() -> dict[str, str]:
        return {"message": "Hello, World!"}

    @app.get("/users/{id:int}")
    async def user(id: int) -> dict[str, int]:
        return {"id": id}

    @app.get("/search")
    async def search(q: str, limit: int = 10) -> dict[str, object]:
        return {"q": q, "limit": limit}

    @app.post("/items")
    async def create(item: Item) -> Item:
        return item

    @app.websocket("/ws")
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        async for message in websocket.iter_text():
            await websocket.send_text(message)

    return app


def _route_handler(index: int) -> Callable[[int], Awaitable[str]]:
    async def handler(item_id: int) -> str:
        return f"r{index}:{item_id}"

    return handler


def build_routes_app(n: int) -> App:
    app = App()
    for i in range(n):
        app.get(f"/r{i}/items/{{item_id:int}}")(_route_handler(i))
    return app


def _resource_handlers(name: str) -> tuple[Callable[..., Awaitable[str]], ...]:
    async def listing() -> str:
        return name

    async def item(item_id: int) -> str:
        return f"{name}:{item_id}"

    async def nested(item_id: int, sub_id: int) -> str:
        return f"{name}:{item_id}:{sub_id}"

    return listing, item, nested


def build_prefixed_app(resources: int) -> App:
    """Three routes per resource, all under /api/v1/ (a list, an item, a nested item)."""
    app = App()
    for i in range(resources):
        listing, item, nested = _resource_handlers(f"res{i}")
        app.get(f"/api/v1/res{i}")(listing)
        app.get(f"/api/v1/res{i}/{{item_id:int}}")(item)
        app.get(f"/api/v1/res{i}/{{item_id:int}}/sub/{{sub_id:int}}")(nested)
    return app


async def _noop(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Any:
    return await call_next(request)


def build_middleware_app() -> App:
    app = App(middleware=[_noop, _noop, _noop])

    @app.get("/plaintext")
    async def plaintext() -> PlainTextResponse:
        return PlainTextResponse("Hello, World!")

    return app


def build_security_app() -> App:
    """A bearer scheme checked before the handler, as docs/security.md shows it."""
    from typing import Annotated

    from joey.security import BearerCredentials, HTTPBearer, Security

    bearer = HTTPBearer()
    app = App()

    async def current_user(token: Annotated[BearerCredentials, Security(bearer)]) -> str:
        if token.token != "bench-token":
            raise bearer.invalid("Unknown token.")
        return "bench"

    @app.get("/me")
    async def me(user: Annotated[str, Security(current_user)]) -> dict[str, str]:
        return {"user": user}

    return app


def build_ratelimit_app() -> App:
    """An in-memory rate limit that the benchmark never exceeds: the cost of counting."""
    from joey.ratelimit import RateLimit
    from joey.security import Security

    app = App()

    @app.get("/limited", dependencies=[Security(RateLimit(1_000_000_000, 60))])
    async def limited() -> PlainTextResponse:
        return PlainTextResponse("Hello, World!")

    return app


def build_metrics_app() -> App:
    """The main app's path-parameter route, measured by ``App(metrics=Metrics())``."""
    from joey.metrics import Metrics

    app = App(metrics=Metrics())

    @app.get("/users/{id:int}")
    async def user(id: int) -> dict[str, int]:
        return {"id": id}

    return app


def build_tracing_app() -> App:
    """``build_app``'s path-parameter route with tracing on: an SDK tracer provider that
    records every span (always sampled) and exports none, so the figure is Joey's cost and the
    SDK's, not an exporter's."""
    from opentelemetry.sdk.trace import TracerProvider

    from joey.observability.tracing import Tracing

    app = App(tracing=Tracing(tracer_provider=TracerProvider()))

    @app.get("/users/{id:int}")
    async def user(id: int) -> dict[str, int]:
        return {"id": id}

    return app


def build_caching_app() -> App:
    """The catalog computed on every request, and from the response cache (in memory)."""
    from scenarios import catalog

    from joey.caching import Caching, MemoryCache

    app = App()

    @app.get("/catalog")
    async def computed() -> list[dict[str, object]]:
        return catalog()

    @app.get("/catalog/cached", caching=Caching(store=MemoryCache(), ttl=60))
    async def cached() -> list[dict[str, object]]:
        return catalog()

    return app
