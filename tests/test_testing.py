"""The in-process test clients: streaming, lifespan, and how they report broken apps."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import httpx
import pytest

from joey import App, JSONResponse, Request, StreamingResponse, WebSocket, WebSocketDisconnect
from joey.testing import (
    WEBSOCKET_TIMEOUT,
    AsyncTestClient,
    LifespanError,
    TestClient,
    WebSocketDenied,
)
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
                "host": request.headers["host"], "query": dict(request.query_params)}

    client = TestClient(app)
    response = client.post("/echo?x=1", json={"a": 1})
    echoed = response.json()
    assert json.loads(echoed.pop("body")) == {"a": 1}  # spacing is httpx's (compact since 0.28)
    assert echoed == {"ct": "application/json", "host": "testserver", "query": {"x": "1"}}


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


# -- handler errors are raised in the test (raise_server_exceptions) ----------------------


class Boom(Exception):
    pass


def _failing_app() -> App:
    app = App()

    @app.get("/boom")
    async def boom() -> str:
        raise Boom("handler failed")

    @app.get("/stream-boom")
    async def stream_boom() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"first"
            raise Boom("stream failed")

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/http-error")
    async def http_error() -> str:
        from joey import NotFound

        raise NotFound("nothing here")

    @app.websocket("/ws/boom")
    async def ws_boom(websocket: WebSocket) -> None:
        await websocket.accept()
        raise Boom(await websocket.receive_text())

    @app.websocket("/ws/refuse")
    async def ws_refuse(websocket: WebSocket) -> None:
        raise Boom("before accept")

    @app.websocket("/ws/late")
    async def ws_late(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hello")
        raise Boom("after the last receive")

    @app.websocket("/ws/silent")
    async def ws_silent(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.receive_text()  # waits for the client, sends nothing

    return app


def test_handler_exception_is_raised_after_the_app_logged_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with TestClient(_failing_app()) as client, pytest.raises(Boom, match="handler failed"):
        client.get("/boom")
    # the app's own logging ran first, unchanged, naming the handler
    [record] = [r for r in caplog.records if r.name == "joey"]
    assert record.getMessage().startswith("Unhandled Boom in tests.test_testing.")
    assert record.getMessage().endswith(" for GET /boom")
    assert record.exc_info is not None and isinstance(record.exc_info[1], Boom)


def test_raise_server_exceptions_false_returns_the_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with TestClient(_failing_app(), raise_server_exceptions=False) as client:
        response = client.get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["title"] == "Internal Server Error"
    assert any("Unhandled Boom" in r.getMessage() for r in caplog.records)


def test_http_errors_are_responses_not_exceptions() -> None:
    with TestClient(_failing_app()) as client:
        assert client.get("/http-error").status_code == 404
        assert client.get("/missing").status_code == 404


def test_catch_all_handler_still_raises_unless_asked_for_the_response() -> None:
    app = _failing_app()

    @app.exception_handler(Exception)
    async def oops(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"oops": str(exc)}, status_code=500)

    with TestClient(app) as client, pytest.raises(Boom):
        client.get("/boom")
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/boom").json() == {"oops": "handler failed"}


async def test_async_client_raises_and_can_return_the_500() -> None:
    app = _failing_app()
    async with AsyncTestClient(app) as client:
        with pytest.raises(Boom):
            await client.get("/boom")
        assert (await client.get("/http-error")).status_code == 404
    async with AsyncTestClient(app, raise_server_exceptions=False) as client:
        assert (await client.get("/boom")).status_code == 500


def test_stream_failing_after_it_started_raises_while_reading() -> None:
    with TestClient(_failing_app()) as client, client.stream("GET", "/stream-boom") as response:
        assert response.status_code == 200
        with pytest.raises(Boom, match="stream failed"):
            response.read()


def test_stream_failing_after_it_started_without_raising_is_truncated() -> None:
    with TestClient(_failing_app(), raise_server_exceptions=False) as client, \
            client.stream("GET", "/stream-boom") as response, \
            pytest.raises(httpx.RemoteProtocolError):
        response.read()


def test_app_crashing_before_answering() -> None:
    async def crash(scope: Scope, receive: Receive, send: Send) -> None:
        raise Boom("no response at all")

    with TestClient(crash) as client, pytest.raises(Boom):
        client.get("/")
    with TestClient(crash, raise_server_exceptions=False) as client:
        response = client.get("/")
    assert response.status_code == 500
    assert response.text == "Internal Server Error"


def test_websocket_handler_exception_is_raised_on_receive() -> None:
    with TestClient(_failing_app()) as client, client.websocket_connect("/ws/boom") as ws:
        ws.send_text("bad frame")
        with pytest.raises(Boom, match="bad frame"):
            ws.receive_text()


def test_websocket_handler_exception_before_accept_is_raised_on_connect() -> None:
    with TestClient(_failing_app()) as client, pytest.raises(Boom, match="before accept"), \
            client.websocket_connect("/ws/refuse"):
        pass  # pragma: no cover - the connect raises


def test_websocket_handler_exception_after_the_last_receive_is_raised_on_exit() -> None:
    with TestClient(_failing_app()) as client, \
            pytest.raises(Boom, match="after the last receive"), \
            client.websocket_connect("/ws/late") as ws:
        assert ws.receive_text() == "hello"


def test_websocket_without_raising_sees_the_close_codes() -> None:
    with TestClient(_failing_app(), raise_server_exceptions=False) as client:
        with client.websocket_connect("/ws/boom") as ws:
            ws.send_text("bad frame")
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_text()
            assert closed.value.code == 1011
        with pytest.raises(WebSocketDenied) as denied, client.websocket_connect("/ws/refuse"):
            pass  # pragma: no cover - the connect raises
        assert denied.value.status_code == 403


async def test_async_websocket_raises_handler_exception() -> None:
    async with AsyncTestClient(_failing_app()) as client, \
            client.websocket_connect("/ws/boom") as ws:
        await ws.send_text("async frame")
        with pytest.raises(Boom, match="async frame"):
            await ws.receive()


# -- WebSocket receive timeouts ------------------------------------------------------------


def test_websocket_receive_times_out_instead_of_hanging() -> None:
    with TestClient(_failing_app()) as client, \
            client.websocket_connect("/ws/silent", timeout=0.2) as ws:
        assert ws.timeout == 0.2
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"/ws/silent within 0\.2 s"):
            ws.receive_text()
        assert 0.15 < time.monotonic() - started < 5
        # a per-call timeout overrides the session's; the session still works afterwards
        with pytest.raises(TimeoutError, match=r"within 0\.05 s"):
            ws.receive(timeout=0.05)
        ws.timeout = 0.1
        with pytest.raises(TimeoutError, match=r"within 0\.1 s"):
            ws.receive_json()
        ws.send_text("now finish")
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_bytes(timeout=5)
        assert closed.value.code == 1000


async def test_async_websocket_receive_times_out_and_keeps_later_messages() -> None:
    app = App()

    @app.websocket("/ws/slow")
    async def slow(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.receive_text()
        await websocket.send_text("late")
        await websocket.receive_text()

    async with AsyncTestClient(app) as client, \
            client.websocket_connect("/ws/slow", timeout=0.1) as ws:
        with pytest.raises(TimeoutError):
            await ws.receive_text()
        await ws.send_text("go")
        # the timed-out receive did not swallow the next message
        assert await ws.receive_text(timeout=None) == "late"


def test_websocket_default_timeout_is_finite() -> None:
    with TestClient(_failing_app()) as client, client.websocket_connect("/ws/silent") as ws:
        assert ws.timeout == WEBSOCKET_TIMEOUT == 10.0
        ws.send_text("bye")


def test_raise_server_exceptions_can_be_switched_on_a_client() -> None:
    with TestClient(_failing_app()) as client:
        assert client.raise_server_exceptions is True
        client.raise_server_exceptions = False
        assert client.get("/boom").status_code == 500
        client.raise_server_exceptions = True
        with pytest.raises(Boom):
            client.get("/boom")


async def test_raise_server_exceptions_can_be_switched_on_an_async_client() -> None:
    async with AsyncTestClient(_failing_app(), raise_server_exceptions=False) as client:
        assert client.raise_server_exceptions is False
        async with client.websocket_connect("/ws/boom") as ws:
            await ws.send_text("x")
            with pytest.raises(WebSocketDisconnect):
                await ws.receive_text()
        client.raise_server_exceptions = True
        with pytest.raises(Boom):
            await client.get("/boom")


# --- wait_for_tasks: the work an app does after its responses --------------------------------


def _after_response_app(done: list[str]) -> App:
    """A teardown, a BackgroundTasks function and a queued task that enqueues another: each
    finishes well after the response is complete."""
    from joey import BackgroundTasks, Depends

    app = App()

    async def session() -> AsyncIterator[str]:
        yield "session"
        await asyncio.sleep(0.2)
        done.append("teardown")

    async def email(to: str) -> None:
        await asyncio.sleep(0.2)
        done.append(f"email {to}")

    @app.task
    async def report(n: int) -> None:
        await asyncio.sleep(0.2)
        done.append(f"report {n}")
        if n == 1:
            await app.tasks.enqueue(report, 2)  # a task a task enqueued is waited for too

    @app.post("/signup")
    async def signup(db: Annotated[str, Depends(session)], background: BackgroundTasks,
                     ) -> None:
        background.add_task(email, "ann")
        await app.tasks.enqueue(report, 1)

    return app


def test_wait_for_tasks_waits_for_teardowns_background_tasks_and_the_queue() -> None:
    done: list[str] = []
    with TestClient(_after_response_app(done)) as client:
        assert client.post("/signup").status_code == 204
        client.wait_for_tasks()
        assert sorted(done) == ["email ann", "report 1", "report 2", "teardown"]
        assert done.index("teardown") < done.index("email ann")  # teardowns come first


async def test_async_wait_for_tasks_waits_the_same() -> None:
    done: list[str] = []
    async with AsyncTestClient(_after_response_app(done)) as client:
        assert (await client.post("/signup")).status_code == 204
        await client.wait_for_tasks()
        assert sorted(done) == ["email ann", "report 1", "report 2", "teardown"]


def test_wait_for_tasks_times_out_naming_what_still_runs() -> None:
    from joey.tasks import InMemoryTasks

    app = App(tasks=InMemoryTasks(shutdown_timeout=0.1))
    never = asyncio.Event()  # never set: the task waits until the backend stops

    @app.task
    async def stuck() -> None:
        await never.wait()

    @app.post("/start")
    async def start() -> None:
        await app.tasks.enqueue(stuck)

    with TestClient(app) as client:
        client.post("/start")
        with pytest.raises(TimeoutError, match=r"still running after 0.2 s: tasks .*stuck x1"):
            client.wait_for_tasks(timeout=0.2)


def test_wait_for_tasks_without_work_returns() -> None:
    app = App()

    @app.get("/")
    async def home() -> str:
        return "home"

    with TestClient(app) as client:
        client.get("/")
        client.wait_for_tasks()  # nothing after the response, no task: returns at once
