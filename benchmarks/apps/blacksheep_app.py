"""The benchmark endpoints in idiomatic BlackSheep (dataclass body, parameters bound by name).

Each app gets its own ``Router``: BlackSheep's default router is process-wide, and the harness
builds several apps in one process.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from blacksheep import Application, FromJSON, Request, Response, WebSocket, json, text
from blacksheep.server.routing import Router
from blacksheep.server.websocket import WebSocketDisconnectError


@dataclass
class Item:
    name: str
    price: float
    tags: list[str] = field(default_factory=list)


async def plaintext() -> Response:
    return text("Hello, World!")


def build_app() -> Application:
    router = Router()

    router.add_get("/plaintext", plaintext)

    @router.get("/json")
    async def json_() -> Response:
        return json({"message": "Hello, World!"})

    @router.get("/users/{int:id}")
    async def user(id: int) -> Response:
        return json({"id": id})

    @router.get("/search")
    async def search(q: str, limit: int = 10) -> Response:
        return json({"q": q, "limit": limit})

    @router.post("/items")
    async def create(item: FromJSON[Item]) -> Response:
        return json(item.value)

    @router.ws("/ws")
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                await websocket.send_text(await websocket.receive_text())
        except WebSocketDisconnectError:
            pass

    return Application(router=router)


def _route_handler(index: int) -> Callable[[int], Awaitable[Response]]:
    async def handler(item_id: int) -> Response:
        return text(f"r{index}:{item_id}")

    return handler


def build_routes_app(n: int) -> Application:
    router = Router()
    for i in range(n):
        router.add_get(f"/r{i}/items/{{int:item_id}}", _route_handler(i))
    return Application(router=router)


def _resource_handlers(name: str) -> tuple[Callable[..., Awaitable[Response]], ...]:
    async def listing() -> Response:
        return text(name)

    async def item(item_id: int) -> Response:
        return text(f"{name}:{item_id}")

    async def nested(item_id: int, sub_id: int) -> Response:
        return text(f"{name}:{item_id}:{sub_id}")

    return listing, item, nested


def build_prefixed_app(resources: int) -> Application:
    router = Router()
    for i in range(resources):
        listing, item, nested = _resource_handlers(f"res{i}")
        router.add_get(f"/api/v1/res{i}", listing)
        router.add_get(f"/api/v1/res{i}/{{int:item_id}}", item)
        router.add_get(f"/api/v1/res{i}/{{int:item_id}}/sub/{{int:sub_id}}", nested)
    return Application(router=router)


async def _noop(request: Request, handler: Callable[[Request], Awaitable[Response]]) -> Response:
    return await handler(request)


def build_middleware_app() -> Application:
    router = Router()
    router.add_get("/plaintext", plaintext)
    app = Application(router=router)
    for _ in range(3):
        app.middlewares.append(_noop)
    return app
