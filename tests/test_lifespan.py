"""Startup and shutdown: hooks, the lifespan context manager, state, failures, tasks, mounts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from joey import App, Request, Router, WebSocket
from joey.lifespan import LifespanDriver, LifespanFailed
from joey.testing import AsyncTestClient, LifespanError, TestClient
from joey.types import Receive, Scope, Send


def test_hooks_sync_and_async_in_order() -> None:
    events: list[str] = []

    async def first() -> None:
        events.append("startup 1")

    def second() -> None:
        events.append("startup 2")

    app = App(on_startup=[first], on_shutdown=[lambda: events.append("shutdown A")])
    app.on_startup(second)

    @app.on_shutdown
    async def later() -> None:
        events.append("shutdown B")

    with TestClient(app):
        assert events == ["startup 1", "startup 2"]
    # shutdown hooks run in reverse order of registration
    assert events == ["startup 1", "startup 2", "shutdown B", "shutdown A"]


def test_lifespan_context_manager_state_reaches_handlers() -> None:
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[dict[str, Any]]:
        events.append("setup")
        yield {"pool": "the-pool"}
        events.append("teardown")

    app = App(lifespan=lifespan)

    @app.get("/")
    async def index(request: Request) -> dict[str, str]:
        return {"request": request.state.pool, "app": request.app.state.pool}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(websocket.state.pool)

    with TestClient(app) as client:
        assert client.get("/").json() == {"request": "the-pool", "app": "the-pool"}
        with client.websocket_connect("/ws") as socket:
            assert socket.receive_text() == "the-pool"
        assert events == ["setup"]
    assert events == ["setup", "teardown"]


def test_router_hooks_run_when_included() -> None:
    events: list[str] = []
    router = Router(prefix="/r", on_startup=[lambda: events.append("router up")],
                    on_shutdown=[lambda: events.append("router down")])
    app = App(on_startup=[lambda: events.append("app up")])
    app.include_router(router)
    with TestClient(app):
        pass
    assert events == ["app up", "router up", "router down"]


def test_startup_failure_names_the_hook(caplog: pytest.LogCaptureFixture) -> None:
    async def connect_db() -> None:
        raise ConnectionError("db is down")

    app = App(on_startup=[connect_db])
    with caplog.at_level(logging.ERROR, logger="joey"), pytest.raises(LifespanError) as failed:
        TestClient(app).__enter__()
    assert "connect_db" in str(failed.value)
    assert "db is down" in str(failed.value)
    assert "connect_db" in caplog.text


def test_startup_failure_undoes_what_started() -> None:
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[None]:
        events.append("cm in")
        yield
        events.append("cm out")

    def boom() -> None:
        raise RuntimeError("boom")

    app = App(lifespan=lifespan, on_startup=[boom], on_shutdown=[lambda: events.append("down")])
    client = TestClient(app)
    with pytest.raises(LifespanError):
        client.__enter__()
    client.close()
    # the failing hook ran before the context manager was entered; shutdown hooks still ran
    assert events == ["down"]


def test_shutdown_hooks_all_run_even_when_one_fails(caplog: pytest.LogCaptureFixture) -> None:
    events: list[str] = []

    def first() -> None:
        events.append("first")

    def broken() -> None:
        events.append("broken")
        raise RuntimeError("cannot close")

    def last() -> None:
        events.append("last")

    app = App(on_shutdown=[first, broken, last])
    client = TestClient(app)
    client.__enter__()
    with caplog.at_level(logging.ERROR, logger="joey"), pytest.raises(LifespanError) as failed:
        client.__exit__()
    assert events == ["last", "broken", "first"]
    assert "cannot close" in str(failed.value)
    assert "cannot close" in caplog.text


async def test_spawned_long_running_task_is_cancelled_at_shutdown() -> None:
    app = App()
    ticks: list[int] = []
    cancelled = asyncio.Event()

    async def forever() -> None:
        try:
            while True:
                ticks.append(1)
                await asyncio.sleep(0.001)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    @app.on_startup
    async def start() -> None:
        app.spawn(forever(), name="ticker")

    async with AsyncTestClient(app):
        await asyncio.sleep(0.02)  # let the loop tick a few times
    assert ticks
    assert cancelled.is_set()
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "ticker"]


async def test_mounted_apps_lifespans_run_in_order() -> None:
    events: list[str] = []

    def recording_app(name: str) -> Any:
        async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
            assert scope["type"] == "lifespan"
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    events.append(f"{name} up")
                    await send({"type": "lifespan.startup.complete"})
                else:
                    events.append(f"{name} down")
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        return asgi

    inner = App(on_startup=[lambda: events.append("inner joey up")])
    app = App(on_startup=[lambda: events.append("outer up")])
    app.mount("/a", recording_app("a"))
    app.mount("/b", recording_app("b"))
    app.mount("/inner", inner)
    async with AsyncTestClient(app):
        assert events == ["a up", "b up", "inner joey up", "outer up"]
    assert events[-2:] == ["b down", "a down"]


async def test_mounted_app_without_lifespan_is_fine() -> None:
    async def http_only(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise RuntimeError("http only")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"plain"})

    app = App()
    app.mount("/plain", http_only)
    async with AsyncTestClient(app) as client:
        assert (await client.get("/plain/x")).text == "plain"


async def test_joey_app_inside_another_asgi_app_without_lifespan() -> None:
    inner = App()

    @inner.get("/hello")
    async def hello(request: Request) -> dict[str, str]:
        return {"root_path": request.scope["root_path"], "url": request.url_path_for("hello")}

    async def outer(scope: Scope, receive: Receive, send: Send) -> None:
        # a minimal "other framework" that mounts the Joey app under /sub, ASGI-style
        if scope["type"] == "lifespan":
            return  # speaks no lifespan at all
        await inner({**scope, "root_path": "/sub"}, receive, send)

    async with AsyncTestClient(outer) as client:
        response = await client.get("/sub/hello")
    assert response.json() == {"root_path": "/sub", "url": "/sub/hello"}


async def test_lifespan_driver_reports_failure() -> None:
    app = App(on_startup=[lambda: 1 / 0])
    driver = LifespanDriver(app)
    with pytest.raises(LifespanFailed, match="ZeroDivisionError"):
        await driver.startup()


async def test_without_lifespan_the_app_still_serves() -> None:
    events: list[str] = []
    app = App(on_startup=[lambda: events.append("up")])

    @app.get("/")
    async def index() -> str:
        return "ok"

    client = AsyncTestClient(app)  # no `async with`: the lifespan never runs
    assert (await client.get("/")).text == "ok"
    await client.aclose()
    assert events == []
    await app.startup()
    await app.shutdown()
    assert events == ["up"]
