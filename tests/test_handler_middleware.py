"""Handler middleware: composed once per route, app → router → route, outermost first."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import AsyncIterator
from typing import Annotated

import msgspec
import pytest

from joey import (
    App,
    BackgroundTasks,
    Form,
    HTTPError,
    JSONResponse,
    Request,
    Response,
    Router,
    StreamingResponse,
    UploadFile,
)
from joey.app import CallNext, HandlerMiddleware
from joey.testing import TestClient

current_user: contextvars.ContextVar[str] = contextvars.ContextVar("current_user", default="?")


def tagger(tag: str) -> HandlerMiddleware:
    async def middleware(request: Request, call_next: CallNext) -> Response:
        request.state.trail = [*getattr(request.state, "trail", []), f"{tag} in"]
        response = await call_next(request)
        response.headers.append("x-trail", f"{tag} out")
        return response

    return middleware


def test_order_is_app_then_router_then_route() -> None:
    app = App(middleware=[tagger("app1"), tagger("app2")])
    router = Router(prefix="/r", middleware=[tagger("router")])

    @router.get("/x", middleware=[tagger("route")])
    async def x(request: Request) -> dict[str, list[str]]:
        return {"trail": request.state.trail}

    @app.get("/plain")
    async def plain(request: Request) -> dict[str, list[str]]:
        return {"trail": request.state.trail}

    app.include_router(router)
    with TestClient(app) as client:
        response = client.get("/r/x")
        assert response.json() == {"trail": ["app1 in", "app2 in", "router in", "route in"]}
        assert response.headers.get_list("x-trail") == [
            "route out", "router out", "app2 out", "app1 out"]
        assert client.get("/plain").json() == {"trail": ["app1 in", "app2 in"]}


def test_app_middleware_sees_404_405_and_options() -> None:
    seen: list[tuple[str, int]] = []

    async def access_log(request: Request, call_next: CallNext) -> Response:
        try:
            response = await call_next(request)
        except HTTPError as exc:
            seen.append((request.path, exc.status_code))
            raise
        seen.append((request.path, response.status_code))
        return response

    app = App(middleware=[access_log])

    @app.get("/here")
    async def here() -> str:
        return "here"

    with TestClient(app) as client:
        assert client.get("/here").status_code == 200
        assert client.get("/nowhere").status_code == 404
        assert client.post("/here").status_code == 405
        assert client.options("/here").status_code == 204
    assert seen == [("/here", 200), ("/nowhere", 404), ("/here", 405), ("/here", 204)]


def test_streaming_background_and_contextvars_survive_middleware() -> None:
    ran: list[str] = []

    async def set_user(request: Request, call_next: CallNext) -> Response:
        token = current_user.set(request.headers.get("x-user", "anon"))
        try:
            return await call_next(request)
        finally:
            current_user.reset(token)

    app = App(middleware=[set_user])

    @app.get("/stream")
    async def stream(tasks: BackgroundTasks) -> StreamingResponse:
        user = current_user.get()
        tasks.add_task(ran.append, f"after response for {user}")

        async def body() -> AsyncIterator[str]:
            for i in range(3):
                yield f"{user}:{i};"

        return StreamingResponse(body(), media_type="text/plain")

    with TestClient(app) as client, client.stream("GET", "/stream",
                                                  headers={"x-user": "ann"}) as response:
        chunks = list(response.iter_raw())
    assert chunks == [b"ann:0;", b"ann:1;", b"ann:2;"]  # still chunk by chunk
    assert ran == ["after response for ann"]


def test_exceptions_reach_middleware_and_exception_handlers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Teapot(Exception):
        pass

    async def catcher(request: Request, call_next: CallNext) -> Response:
        try:
            return await call_next(request)
        except KeyError as exc:
            return JSONResponse({"caught_by_middleware": str(exc)}, status_code=400)

    async def broken(request: Request, call_next: CallNext) -> Response:
        if request.path == "/mw-bug":
            raise RuntimeError("middleware bug")
        return await call_next(request)

    app = App(middleware=[catcher, broken])

    @app.exception_handler(Teapot)
    async def teapot(request: Request, exc: Teapot) -> Response:
        return Response(b"short and stout", status_code=418)

    @app.get("/key")
    async def key() -> None:
        raise KeyError("missing")

    @app.get("/teapot")
    async def pot() -> None:
        raise Teapot()

    @app.get("/mw-bug")
    async def fine() -> str:
        return "never"

    with caplog.at_level(logging.ERROR, logger="joey"), \
            TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/key").json() == {"caught_by_middleware": "'missing'"}
        assert client.get("/teapot").status_code == 418
        bug = client.get("/mw-bug")
        assert bug.status_code == 500
        assert bug.json()["title"] == "Internal Server Error"
    assert "middleware bug" in caplog.text


def test_middleware_chain_is_built_once() -> None:
    built: list[int] = []

    class Counting:
        def __init__(self) -> None:
            built.append(1)

        async def __call__(self, request: Request, call_next: CallNext) -> Response:
            return await call_next(request)

    app = App(middleware=[Counting()])

    @app.get("/")
    async def index() -> str:
        return "ok"

    with TestClient(app) as client:
        for _ in range(5):
            assert client.get("/").text == "ok"
    assert built == [1]


class Profile(msgspec.Struct):
    name: str
    age: int
    tags: list[str] = []


def test_typed_forms_and_upload_files() -> None:
    app = App()

    @app.post("/profile")
    async def profile(data: Annotated[Profile, Form()]) -> Profile:
        return data

    @app.post("/upload")
    async def upload(avatar: UploadFile, caption: Annotated[str, Form()] = "") -> dict[str, object]:
        content = await avatar.read()
        return {"filename": avatar.filename, "size": len(content), "caption": caption}

    with TestClient(app) as client:
        response = client.post("/profile", data={"name": "ann", "age": "31", "tags": ["a", "b"]})
        assert response.json() == {"name": "ann", "age": 31, "tags": ["a", "b"]}
        bad = client.post("/profile", data={"name": "ann", "age": "old"})
        assert bad.status_code == 422
        assert bad.json()["errors"] == [
            {"loc": "form", "name": "$.age", "message": "Expected `int`, got `str`",
             "type": "type", "location": ["form", "age"]}]
        assert client.post("/profile", json={"name": "ann", "age": 1}).status_code == 415
        uploaded = client.post("/upload", files={"avatar": ("me.png", b"\x89PNG" * 10)},
                               data={"caption": "hi"})
        assert uploaded.json() == {"filename": "me.png", "size": 40, "caption": "hi"}
        missing = client.post("/upload", data={"caption": "hi"})
        assert missing.status_code == 422
        assert missing.json()["errors"] == [
            {"loc": "form", "name": "avatar", "message": "Field required",
             "type": "missing", "location": ["form", "avatar"]}]
