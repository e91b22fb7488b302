"""Background tasks: run in order after the response, sync ones in a thread, failures logged."""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable

import pytest

from joey import App, BackgroundTasks
from joey.testing import TestClient

from .asgi import (
    Recorder,
    call,
    close_test_clients,  # noqa: F401 - autouse fixture
    http_scope,
)


async def test_tasks_run_in_order_after_the_response(caplog: pytest.LogCaptureFixture) -> None:
    app = App()
    events: list[str] = []
    threads: dict[str, int] = {}

    async def first(name: str, *, suffix: str) -> None:
        threads["loop"] = threading.get_ident()
        events.append(f"async {name}{suffix}")

    def broken() -> None:
        raise RuntimeError("task broke")

    def second(name: str) -> None:
        threads["sync"] = threading.get_ident()
        events.append(f"sync {name}")

    def returns_awaitable() -> Awaitable[None]:
        async def later() -> None:
            events.append("awaited")

        return later()

    @app.post("/signup")
    async def signup(tasks: BackgroundTasks) -> dict[str, int]:
        tasks.add_task(first, "a", suffix="!")
        tasks.add_task(broken)
        tasks.add_task(second, "b")
        tasks.add_task(returns_awaitable)
        events.append("handler")
        return {"queued": len(tasks)}

    with caplog.at_level(logging.ERROR, logger="joey"):
        recorder = await call(app, http_scope("/signup", method="POST"))
    assert recorder.body == b'{"queued":4}'
    assert events == ["handler", "async a!", "sync b", "awaited"]
    assert threads["sync"] != threads["loop"]
    assert "Background task" in caplog.text and "broken" in caplog.text


async def test_response_is_complete_before_tasks_run() -> None:
    app = App()
    seen: list[list[str]] = []
    recorder = Recorder([], then_disconnect=False)

    def task() -> None:
        seen.append([m["type"] for m in recorder.sent if not m.get("more_body")])

    @app.get("/")
    async def index(tasks: BackgroundTasks) -> str:
        tasks.add_task(task)
        return "sent"

    await app(http_scope("/"), recorder.receive, recorder.send)
    assert seen == [["http.response.start", "http.response.body"]]
    assert recorder.body == b"sent"


def test_test_client_returns_once_tasks_are_done() -> None:
    app = App()
    done: list[bool] = []

    @app.get("/")
    async def index(tasks: BackgroundTasks) -> str:
        tasks.add_task(lambda: done.append(True))
        return "sent"

    assert TestClient(app).get("/").text == "sent"
    assert done == [True]  # side effects are visible right after the call
