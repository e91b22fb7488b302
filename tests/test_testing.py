"""The in-process test clients: streaming, lifespan, and how they report broken apps."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from joey import App, Request, StreamingResponse
from joey.testing import AsyncTestClient, LifespanError, TestClient
from joey.types import Receive, Scope, Send

from .asgi import close_test_clients  # noqa: F401 - autouse fixture


def _lockstep_app(step: threading.Event, produced: list[str]) -> App:
    """Streams two chunks; the second only after the test saw the first."""
    app = App()

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            produced.append("one")
            yield b"one"
            await asyncio.to_thread(step.wait, 5)
            produced.append("two")
            yield b"two"

        return StreamingResponse(chunks(), media_type="text/plain")

    return app


def test_sync_client_streams_chunk_by_chunk() -> None:
    step = threading.Event()
    produced: list[str] = []
    client = TestClient(_lockstep_app(step, produced))
    with client.stream("GET", "/stream") as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        chunks = response.iter_raw()
        assert next(chunks) == b"one"
        assert produced == ["one"]  # the second chunk does not exist yet
        step.set()
        assert list(chunks) == [b"two"]
    assert produced == ["one", "two"]
    client.close()


async def test_async_client_streams_chunk_by_chunk() -> None:
    step = threading.Event()
    produced: list[str] = []
    async with (
        AsyncTestClient(_lockstep_app(step, produced)) as client,
        client.stream("GET", "/stream") as response,
    ):
        chunks = response.aiter_raw()
        assert await chunks.__anext__() == b"one"
        assert produced == ["one"]
        step.set()
        assert [chunk async for chunk in chunks] == [b"two"]


def test_closing_a_stream_early_disconnects_the_app() -> None:
    app = App()
    finished = threading.Event()

    @app.get("/endless")
    async def endless() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            try:
                while True:
                    yield b"x"
                    await asyncio.sleep(0.001)
            finally:
                finished.set()

        return StreamingResponse(chunks())

    with TestClient(app) as client, client.stream("GET", "/endless") as response:
        assert next(response.iter_raw()) == b"x"
    assert finished.wait(5)


def test_lifespan_runs_on_enter_and_exit() -> None:
    events: list[str] = []
    app = App(on_startup=[lambda: events.append("startup")],
              on_shutdown=[lambda: events.append("shutdown")])

    @app.get("/")
    async def index(request: Request) -> list[str]:
        return list(events)

    client = TestClient(app)
    assert events == []
    with client:
        assert events == ["startup"]
        assert client.get("/").json() == ["startup"]
    assert events == ["startup", "shutdown"]


async def test_async_lifespan_runs_on_enter_and_exit() -> None:
    events: list[str] = []

    async def start() -> None:
        events.append("startup")

    app = App(on_startup=[start], on_shutdown=[lambda: events.append("shutdown")])
    async with AsyncTestClient(app):
        assert events == ["startup"]
    assert events == ["startup", "shutdown"]


def test_failing_startup_raises() -> None:
    def broken() -> None:
        raise RuntimeError("database unreachable")

    app = App(on_startup=[broken])
    with pytest.raises(LifespanError, match="database unreachable"), TestClient(app):
        pass  # pragma: no cover - never entered


async def test_async_failing_startup_raises() -> None:
    def broken() -> None:
        raise RuntimeError("database unreachable")

    with pytest.raises(LifespanError, match="database unreachable"):
        async with AsyncTestClient(App(on_startup=[broken])):
            pass  # pragma: no cover - never entered


def test_client_sends_bodies_and_headers() -> None:
    app = App()

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, Any]:
        return {"body": (await request.body()).decode(), "ct": request.headers["content-type"],
                "host": request.headers["host"], "query": dict(request.query)}

    client = TestClient(app)
    response = client.post("/echo?x=1", json={"a": 1})
    assert response.json() == {"body": '{"a":1}', "ct": "application/json",
                               "host": "testserver", "query": {"x": "1"}}


async def test_async_client_streams_request_bodies() -> None:
    app = App()
    sizes: list[int] = []

    @app.post("/upload")
    async def upload(request: Request) -> int:
        async for chunk in request.stream():
            sizes.append(len(chunk))
        return sum(sizes)

    async def body() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b"abcd"

    async with AsyncTestClient(app) as client:
        response = await client.post("/upload", content=body())
    assert response.text == "12"
    assert sizes == [4, 4, 4]


# --- broken apps are reported, not hidden ---------------------------------------------------------


async def _silent(scope: Scope, receive: Receive, send: Send) -> None:
    return None


async def _raises(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        raise ValueError("app exploded")


async def _double_start(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.start", "status": 200, "headers": []})


async def _body_first(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.body", "body": b"x"})


async def _unfinished(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"part", "more_body": True})


def test_app_without_a_response_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="without sending a response"):
        TestClient(_silent).get("/")


def test_app_exception_reaches_the_test() -> None:
    with pytest.raises(ValueError, match="app exploded"):
        TestClient(_raises).get("/")


def test_protocol_errors_are_reported() -> None:
    client = TestClient(_double_start)
    with pytest.raises(RuntimeError, match="start twice"):
        client.get("/")
    with pytest.raises(RuntimeError, match=r"body before http\.response\.start"):
        TestClient(_body_first).get("/")
    with pytest.raises(httpx.RemoteProtocolError, match="before finishing"):
        TestClient(_unfinished).get("/")


def test_non_lifespan_app_is_fine_in_a_with_block() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise RuntimeError("lifespan unsupported")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    with TestClient(app) as client:
        assert client.get("/").text == "ok"


def test_root_path_is_passed_to_the_app() -> None:
    app = App()

    @app.get("/where")
    async def where(request: Request) -> dict[str, str]:
        return {"root": request.scope["root_path"], "path": request.path}

    assert TestClient(app, root_path="/api").get("/where").json() == {
        "root": "/api", "path": "/api/where",
    }


def test_sync_iterator_streaming_through_the_client() -> None:
    app = App()

    @app.get("/lines")
    def lines() -> StreamingResponse:
        def produce() -> Iterator[str]:
            yield from ("a\n", "b\n")

        return StreamingResponse(produce())

    with TestClient(app) as client, client.stream("GET", "/lines") as response:
        assert list(response.iter_raw()) == [b"a\n", b"b\n"]
