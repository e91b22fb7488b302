"""The benchmark endpoints in idiomatic Starlette.

Starlette has no validation layer; its users bring one, here msgspec (as the raw baseline does).
The middlewares are pure ASGI classes, the form Starlette's docs recommend over BaseHTTPMiddleware.
"""

from __future__ import annotations

import msgspec
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket


class Item(msgspec.Struct):
    name: str
    price: float
    tags: list[str] = []


async def plaintext(request: Request) -> Response:
    return PlainTextResponse("Hello, World!")


async def json_(request: Request) -> Response:
    return JSONResponse({"message": "Hello, World!"})


async def user(request: Request) -> Response:
    return JSONResponse({"id": request.path_params["id"]})


async def search(request: Request) -> Response:
    try:
        q = request.query_params["q"]
        limit = int(request.query_params.get("limit", 10))
    except (KeyError, ValueError):
        return PlainTextResponse("invalid query", status_code=422)
    return JSONResponse({"q": q, "limit": limit})


async def create(request: Request) -> Response:
    try:
        item = msgspec.json.decode(await request.body(), type=Item)
    except msgspec.DecodeError as exc:
        return PlainTextResponse(str(exc), status_code=422)
    return Response(msgspec.json.encode(item), media_type="application/json")


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    async for message in websocket.iter_text():
        await websocket.send_text(message)


def build_app() -> ASGIApp:
    return Starlette(
        routes=[
            Route("/plaintext", plaintext),
            Route("/json", json_),
            Route("/users/{id:int}", user),
            Route("/search", search),
            Route("/items", create, methods=["POST"]),
            WebSocketRoute("/ws", echo),
        ]
    )


def _route_endpoint(index: int):  # type: ignore[no-untyped-def]
    async def endpoint(request: Request) -> Response:
        return PlainTextResponse(f"r{index}:{request.path_params['item_id']}")

    return endpoint


def build_routes_app(n: int) -> ASGIApp:
    return Starlette(
        routes=[Route(f"/r{i}/items/{{item_id:int}}", _route_endpoint(i)) for i in range(n)]
    )


def _resource_endpoints(name: str):  # type: ignore[no-untyped-def]
    async def listing(request: Request) -> Response:
        return PlainTextResponse(name)

    async def item(request: Request) -> Response:
        return PlainTextResponse(f"{name}:{request.path_params['item_id']}")

    async def nested(request: Request) -> Response:
        params = request.path_params
        return PlainTextResponse(f"{name}:{params['item_id']}:{params['sub_id']}")

    return listing, item, nested


def build_prefixed_app(resources: int) -> ASGIApp:
    routes = []
    for i in range(resources):
        listing, item, nested = _resource_endpoints(f"res{i}")
        base = f"/api/v1/res{i}"
        routes += [
            Route(base, listing),
            Route(f"{base}/{{item_id:int}}", item),
            Route(f"{base}/{{item_id:int}}/sub/{{sub_id:int}}", nested),
        ]
    return Starlette(routes=routes)


class NoOpMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def build_middleware_app() -> ASGIApp:
    return Starlette(
        routes=[Route("/plaintext", plaintext)],
        middleware=[Middleware(NoOpMiddleware) for _ in range(3)],
    )
