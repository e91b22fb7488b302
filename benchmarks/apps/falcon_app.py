"""The benchmark endpoints in idiomatic Falcon (ASGI): resources with responders.

Falcon has no validation layer; the body is validated with msgspec, as in Falcon's msgspec recipe.
"""

from __future__ import annotations

import falcon
import falcon.asgi
import msgspec
from falcon.asgi import Request, Response, WebSocket


class Item(msgspec.Struct):
    name: str
    price: float
    tags: list[str] = []


class Plaintext:
    async def on_get(self, req: Request, resp: Response) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = "Hello, World!"


class Json:
    async def on_get(self, req: Request, resp: Response) -> None:
        resp.media = {"message": "Hello, World!"}


class User:
    async def on_get(self, req: Request, resp: Response, id: int) -> None:
        resp.media = {"id": id}


class Search:
    async def on_get(self, req: Request, resp: Response) -> None:
        q = req.get_param("q", required=True)
        limit = req.get_param_as_int("limit", default=10)
        resp.media = {"q": q, "limit": limit}


class Items:
    async def on_post(self, req: Request, resp: Response) -> None:
        try:
            item = msgspec.json.decode(await req.stream.read(), type=Item)
        except msgspec.DecodeError as exc:
            raise falcon.HTTPUnprocessableEntity(description=str(exc)) from exc
        resp.content_type = falcon.MEDIA_JSON
        resp.data = msgspec.json.encode(item)


class Echo:
    async def on_websocket(self, req: Request, ws: WebSocket) -> None:
        await ws.accept()
        while True:
            try:
                message = await ws.receive_text()
            except falcon.WebSocketDisconnected:
                return
            await ws.send_text(message)


def build_app() -> falcon.asgi.App:
    app = falcon.asgi.App()
    app.add_route("/plaintext", Plaintext())
    app.add_route("/json", Json())
    app.add_route("/users/{id:int}", User())
    app.add_route("/search", Search())
    app.add_route("/items", Items())
    app.add_route("/ws", Echo())
    return app


class RouteResource:
    def __init__(self, index: int) -> None:
        self.prefix = f"r{index}:"

    async def on_get(self, req: Request, resp: Response, item_id: int) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = f"{self.prefix}{item_id}"


def build_routes_app(n: int) -> falcon.asgi.App:
    app = falcon.asgi.App()
    for i in range(n):
        app.add_route(f"/r{i}/items/{{item_id:int}}", RouteResource(i))
    return app


class ResourceList:
    def __init__(self, name: str) -> None:
        self.name = name

    async def on_get(self, req: Request, resp: Response) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = self.name


class ResourceItem(ResourceList):
    async def on_get(self, req: Request, resp: Response, item_id: int) -> None:  # type: ignore[override]
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = f"{self.name}:{item_id}"


class ResourceNested(ResourceList):
    async def on_get(  # type: ignore[override]
        self, req: Request, resp: Response, item_id: int, sub_id: int
    ) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = f"{self.name}:{item_id}:{sub_id}"


def build_prefixed_app(resources: int) -> falcon.asgi.App:
    app = falcon.asgi.App()
    for i in range(resources):
        name = f"res{i}"
        app.add_route(f"/api/v1/{name}", ResourceList(name))
        app.add_route(f"/api/v1/{name}/{{item_id:int}}", ResourceItem(name))
        app.add_route(f"/api/v1/{name}/{{item_id:int}}/sub/{{sub_id:int}}", ResourceNested(name))
    return app


class NoOpMiddleware:
    async def process_request(self, req: Request, resp: Response) -> None:
        pass


def build_middleware_app() -> falcon.asgi.App:
    app = falcon.asgi.App(middleware=[NoOpMiddleware() for _ in range(3)])
    app.add_route("/plaintext", Plaintext())
    return app
