"""Tasks through a `joey.App`: handlers enqueue, the lifespan starts and stops the backend,
and `joey worker` runs a real App (its startup and shutdown included) against Redis."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import types
from pathlib import Path
from typing import Any

import pytest

from joey import App, Request
from joey.__main__ import main
from joey.tasks import Backoff, InMemoryTasks, RedisTasks, TaskState
from joey.tasks.worker import run_worker
from joey.testing import TestClient
from tests.tasks.conftest import WorkerFactory, stop_gracefully

ROOT = Path(__file__).parents[2]  # where `tests.tasks.redis_app` imports from
NO_WAIT = Backoff(base=0.0, jitter=0.0)


def task_routes(app: App) -> None:
    """Routes that enqueue by name and report a task, as an app's own handlers would."""

    @app.post("/run/{name}", status_code=202)
    async def run(request: Request, name: str) -> dict[str, str]:
        return {"id": await request.app.tasks.enqueue(name)}

    @app.get("/tasks/{task_id}")
    async def status(request: Request, task_id: str) -> dict[str, Any]:
        info = await request.app.tasks.status(task_id)
        return {"state": None} if info is None else {"state": info.state.value}

    @app.get("/tasks/{task_id}/wait")
    async def wait(request: Request, task_id: str) -> dict[str, Any]:
        async with asyncio.timeout(10):
            info = await request.app.tasks.wait(task_id)
        return {
            "state": info.state.value,
            "result": info.result,
            "attempts": info.attempts,
            "error": info.error,
        }

    @app.get("/dead")
    async def dead(request: Request) -> list[str]:
        return [info.id for info in await request.app.tasks.dead_letters()]


# -- in memory: the default backend ------------------------------------------------------------


def test_handler_enqueues_and_status_reports_succeeded() -> None:
    app = App()

    @app.task
    async def add(a: int, b: int) -> int:
        return a + b

    @app.task(name="shout")
    def shout(word: str) -> str:  # sync: runs in the backend's thread pool
        return word.upper() + "!"

    @app.post("/add", status_code=202)
    async def enqueue_add(request: Request, a: int, b: int) -> dict[str, str]:
        return {"id": await request.app.tasks.enqueue(add, a, b)}

    @app.post("/shout/{word}", status_code=202)
    async def enqueue_shout(request: Request, word: str) -> dict[str, str]:
        return {"id": await request.app.tasks.enqueue(shout, word)}

    task_routes(app)
    assert isinstance(app.tasks, InMemoryTasks) and app.task == app.tasks.task
    with TestClient(app) as client:
        response = client.post("/add?a=2&b=3")
        assert response.status_code == 202
        added = response.json()["id"]
        shouted = client.post("/shout/hey").json()["id"]
        assert client.get(f"/tasks/{added}/wait").json() == {
            "state": "succeeded", "result": 5, "attempts": 1, "error": None,
        }  # fmt: skip
        assert client.get(f"/tasks/{shouted}/wait").json()["result"] == "HEY!"
        assert client.get(f"/tasks/{added}").json() == {"state": "succeeded"}
        assert client.get("/tasks/no-such-id").json() == {"state": None}


def test_retries_then_succeeds_or_dies(caplog: pytest.LogCaptureFixture) -> None:
    app = App()
    calls: list[int] = []

    @app.task(name="flaky", retries=2, backoff=NO_WAIT)
    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError(f"attempt {len(calls)} failed")
        return "third time lucky"

    @app.task(name="broken", retries=1, backoff=NO_WAIT)
    async def broken() -> None:
        raise ValueError("always")

    task_routes(app)
    with caplog.at_level(logging.WARNING, logger="joey.tasks"), TestClient(app) as client:
        lucky = client.post("/run/flaky").json()["id"]
        doomed = client.post("/run/broken").json()["id"]
        assert client.get(f"/tasks/{lucky}/wait").json() == {
            "state": "succeeded", "result": "third time lucky", "attempts": 3, "error": None,
        }  # fmt: skip
        assert client.get(f"/tasks/{doomed}/wait").json() == {
            "state": "dead", "result": None, "attempts": 2, "error": "ValueError: always",
        }  # fmt: skip
        assert client.get("/dead").json() == [doomed]
    messages = [r.getMessage() for r in caplog.records]
    assert any("flaky" in m and "failed (attempt 2 of 3)" in m for m in messages)
    assert any("broken" in m and "is dead after 2 attempt(s)" in m for m in messages)


def test_two_apps_in_one_process_have_independent_queues() -> None:
    apps = {tag: App() for tag in ("first", "second")}
    for tag, app in apps.items():

        @app.task(name="whoami")
        async def whoami(tag: str = tag) -> str:
            return tag

        task_routes(app)

    assert apps["first"].tasks is not apps["second"].tasks
    with TestClient(apps["first"]) as first, TestClient(apps["second"]) as second:
        one = first.post("/run/whoami").json()["id"]
        two = second.post("/run/whoami").json()["id"]
        assert first.get(f"/tasks/{one}/wait").json()["result"] == "first"
        assert second.get(f"/tasks/{two}/wait").json()["result"] == "second"
        assert second.get(f"/tasks/{one}").json() == {"state": None}
        assert first.get(f"/tasks/{two}").json() == {"state": None}


def test_client_exit_reports_tasks_that_never_started(caplog: pytest.LogCaptureFixture) -> None:
    app = App(tasks=InMemoryTasks(max_concurrency=1, shutdown_timeout=0.1))
    started = threading.Event()  # set on the client's event loop thread, read here

    @app.task(name="blocker")
    async def blocker() -> None:
        started.set()
        await asyncio.Event().wait()

    @app.task(name="emails.welcome")
    async def welcome() -> None: ...

    task_routes(app)
    with caplog.at_level(logging.WARNING, logger="joey.tasks"), TestClient(app) as client:
        running = client.post("/run/blocker").json()["id"]
        assert started.wait(5)
        never = [client.post("/run/emails.welcome").json()["id"] for _ in range(2)]
    # The client's exit ran the app's shutdown, which stopped the backend.
    messages = [r.getMessage() for r in caplog.records]
    [line] = [m for m in messages if "never started" in m]
    assert "2 queued task(s) never started" in line and "emails.welcome x2" in line
    assert any("1 running task(s) cancelled" in m and "blocker x1" in m for m in messages)
    for task_id in [running, *never]:
        info = asyncio.run(app.tasks.status(task_id))
        assert info is not None and info.state is TaskState.CANCELLED


# -- Redis: a web process and a `joey worker` process ------------------------------------------


def test_web_app_enqueues_over_http_and_a_worker_runs_it(
    redis_url: str, prefix: str, start_worker: WorkerFactory
) -> None:
    from tests.tasks.redis_app import make_app

    web = make_app(redis_url, prefix, consume=False)
    with TestClient(web) as client:
        # Enqueued before any worker exists; the worker's slow startup hook must still run
        # before the task does (the task reads what the hook made).
        task_id = client.post("/greet/ada").json()["id"]
        assert client.get(f"/tasks/{task_id}").json()["state"] == "queued"
        worker = start_worker(target="tests.tasks.redis_app:app", app_dir=ROOT)
        body = client.get(f"/tasks/{task_id}?wait=true").json()
    assert body["state"] == "succeeded" and body["attempts"] == 1
    assert body["result"] == {"hello": "ada", "pid": worker.pid, "pool": f"pool of {worker.pid}"}
    log = stop_gracefully(worker)
    assert log.index("shutdown hook: pool closed") < log.index("worker stopped")


async def test_run_worker_wraps_the_app_startup_and_shutdown(
    redis_url: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.tasks.redis_app import make_app

    app = make_app(redis_url, prefix, consume=False)
    backend = app.tasks
    assert isinstance(backend, RedisTasks)
    producer = RedisTasks(redis_url, prefix=prefix, consume=False)
    with caplog.at_level(logging.INFO):
        async with producer:
            task_id = await producer.enqueue("greet", "here")
            stop = asyncio.Event()
            worker = asyncio.create_task(run_worker(backend, stop, app=app))
            async with asyncio.timeout(20):
                info = await producer.wait(task_id)
                assert backend.consuming
                stop.set()
                await worker
    assert info.state is TaskState.SUCCEEDED
    assert info.result == {"hello": "here", "pid": os.getpid(), "pool": f"pool of {os.getpid()}"}
    assert not backend.consuming
    messages = [r.getMessage() for r in caplog.records]
    order = [
        next(i for i, m in enumerate(messages) if text in m)
        for text in ("pool opened", "] started", "pool closed", "worker stopped")
    ]
    assert order == sorted(order)


async def test_run_worker_refuses_a_backend_started_without_consuming(
    redis_url: str, prefix: str
) -> None:
    app = App(tasks=RedisTasks(redis_url, prefix=prefix, consume=False))
    backend = app.tasks
    assert isinstance(backend, RedisTasks)

    @app.on_startup
    async def eager() -> None:
        await backend.start(consume=False)

    with pytest.raises(RuntimeError, match="without consuming"):
        await run_worker(backend, asyncio.Event(), app=app)
    assert not backend.consuming and backend._client is None  # the app's shutdown stopped it


def test_cli_reports_a_failing_app_startup(
    redis_url: str,
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = App(tasks=RedisTasks(redis_url, prefix=prefix))

    @app.on_startup
    def connect() -> None:
        raise ConnectionRefusedError("no database")

    module = types.ModuleType("joey_test_failing_app")
    module.app = app  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "joey_test_failing_app", module)
    # `joey worker` sets the root logger's level for its process; here the process is the
    # suite's, whose later tests expect the default (WARNING) back.
    root = logging.getLogger()
    level = root.level
    try:
        assert main(["worker", "joey_test_failing_app:app"]) == 1
    finally:
        root.setLevel(level)  # also empties the loggers' cached answers
    assert "no database" in capsys.readouterr().err
