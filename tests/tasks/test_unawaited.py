"""A forgotten ``await`` on ``enqueue`` (issue #26 §1): the request fails with a 500 whose
logged message names the task and the missing ``await``; it never answers 200 with nothing
queued. Awaited, created as a task, gathered or handed to ``BackgroundTasks``, enqueue works
as before."""

from __future__ import annotations

import asyncio
import logging

import pytest

from joey import App, BackgroundTasks
from joey.tasks import InMemoryTasks
from joey.testing import TestClient

from ..asgi import close_test_clients  # noqa: F401 - autouse fixture


def _app() -> tuple[App, list[str]]:
    app = App()
    ran: list[str] = []

    @app.task
    async def note(word: str) -> None:
        ran.append(word)

    @app.get("/forgotten")
    async def forgotten() -> str:
        app.tasks.enqueue(note, "forgotten")
        return "queued"

    @app.get("/kept")
    async def kept() -> str:
        pending = app.tasks.enqueue(note, "kept but never awaited")  # noqa: F841
        return "queued"

    @app.get("/with-options")
    async def with_options() -> str:
        app.tasks.options(delay=0).enqueue(note, "with options")
        return "queued"

    @app.get("/awaited/{word}")
    async def awaited(word: str) -> str:
        task_id = await app.tasks.enqueue(note, word)
        async with asyncio.timeout(30):
            await app.tasks.wait(task_id)
        return task_id

    @app.get("/other-ways")
    async def other_ways(background: BackgroundTasks) -> int:
        ids = await asyncio.gather(app.tasks.enqueue(note, "gathered"),
                                   asyncio.create_task(app.tasks.enqueue(note, "created")))
        background.add_task(app.tasks.enqueue, note, "in the background")
        return len(ids)

    return app, ran


@pytest.mark.parametrize(("path", "call"), [
    ("/forgotten", "app.tasks.enqueue(note, ...)"),
    ("/kept", "app.tasks.enqueue(note, ...)"),
    ("/with-options", "app.tasks.options(...).enqueue(note, ...)"),
])
def test_a_forgotten_await_on_enqueue_is_a_500_naming_it(
    path: str, call: str, caplog: pytest.LogCaptureFixture
) -> None:
    app, ran = _app()
    with caplog.at_level(logging.ERROR, logger="joey"), TestClient(
        app, raise_server_exceptions=False
    ) as client:
        response = client.get(path)
        assert response.status_code == 500
        assert client.get("/awaited/after").status_code == 200  # the queue runs in order
    assert ran == ["after"]  # the forgotten one was never queued
    logged = caplog.text
    assert f"{call} was never awaited, so the task was not queued" in logged
    assert "Did you forget `await`?" in logged


def test_enqueue_awaited_gathered_created_or_in_the_background_works() -> None:
    app, ran = _app()
    with TestClient(app) as client:
        assert client.get("/other-ways").json() == 2
        assert client.get("/awaited/last").status_code == 200
    assert sorted(ran) == ["created", "gathered", "in the background", "last"]


async def test_outside_a_request_a_dropped_enqueue_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tasks = InMemoryTasks()

    @tasks.task
    async def job() -> None: ...

    with caplog.at_level(logging.ERROR, logger="joey.tasks"):
        tasks.enqueue(job)
    assert "app.tasks.enqueue(job, ...) was never awaited" in caplog.text
    closed = tasks.enqueue(job)
    closed.close()  # closed on purpose: nothing to report
    del closed
    assert caplog.text.count("was never awaited") == 1
