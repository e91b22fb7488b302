"""The benchmark endpoints in idiomatic FastAPI (pydantic models, typed parameters).

The middlewares are pure ASGI classes added with ``add_middleware`` (FastAPI's "advanced
middleware"), cheaper than ``@app.middleware("http")``, so FastAPI is shown at its fastest.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


def _add_plaintext(app: FastAPI) -> None:
    @app.get("/plaintext", response_class=PlainTextResponse)
    async def plaintext() -> str:
        return "Hello, World!"


def build_app() -> FastAPI:
    app = FastAPI()
    _add_plaintext(app)

    @app.get("/json")
    async def json_() -> dict[str, str]:
        return {"message": "Hello, World!"}

    @app.get("/users/{id}")
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
        try:
            while True:
                await websocket.send_text(await websocket.receive_text())
        except WebSocketDisconnect:
            pass

    return app


def _route_handler(index: int) -> Callable[[int], Awaitable[str]]:
    async def handler(item_id: int) -> str:
        return f"r{index}:{item_id}"

    return handler


def build_routes_app(n: int) -> FastAPI:
    app = FastAPI()
    for i in range(n):
        app.get(f"/r{i}/items/{{item_id}}", response_class=PlainTextResponse)(_route_handler(i))
    return app


def _resource_handlers(name: str) -> tuple[Callable[..., Awaitable[str]], ...]:
    async def listing() -> str:
        return name

    async def item(item_id: int) -> str:
        return f"{name}:{item_id}"

    async def nested(item_id: int, sub_id: int) -> str:
        return f"{name}:{item_id}:{sub_id}"

    return listing, item, nested


def build_prefixed_app(resources: int) -> FastAPI:
    app = FastAPI()
    for i in range(resources):
        listing, item, nested = _resource_handlers(f"res{i}")
        text = {"response_class": PlainTextResponse}
        app.get(f"/api/v1/res{i}", **text)(listing)  # type: ignore[arg-type]
        app.get(f"/api/v1/res{i}/{{item_id}}", **text)(item)  # type: ignore[arg-type]
        app.get(f"/api/v1/res{i}/{{item_id}}/sub/{{sub_id}}", **text)(nested)  # type: ignore[arg-type]
    return app


class NoOpMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def build_middleware_app() -> FastAPI:
    app = FastAPI()
    _add_plaintext(app)
    for _ in range(3):
        app.add_middleware(NoOpMiddleware)
    return app


def _security_parts() -> tuple[Any, Any]:
    from fastapi import Depends, HTTPException
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

    bearer = HTTPBearer()

    async def current_user(
        token: HTTPAuthorizationCredentials = Depends(bearer),  # noqa: B008 - FastAPI style
    ) -> str:
        if token.credentials != "bench-token":
            raise HTTPException(401, "Unknown token.", {"www-authenticate": "Bearer"})
        return "bench"

    return current_user, Depends(current_user)


def build_security_app() -> FastAPI:
    """FastAPI's own HTTPBearer scheme as a dependency (it has no built-in rate limit: that
    scenario is "n/a" for FastAPI). Defaults, not ``Annotated``: this module has string
    annotations, which FastAPI cannot resolve for functions defined inside a function."""
    _, user_dependency = _security_parts()
    app = FastAPI()

    @app.get("/me")
    async def me(user: str = user_dependency) -> dict[str, str]:
        return {"user": user}

    return app
