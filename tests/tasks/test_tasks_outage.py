"""Redis outages and bad payloads: a frozen or stopped Redis is a 503 at enqueue, a commit
survives a blip, and a payload too deep to decode is dead-lettered without stopping the worker."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from joey import App, Request, ServiceUnavailable
from joey._redis import from_url
from joey.tasks import InMemoryTasks, RedisTasks, TaskState, TasksUnavailable
from joey.testing import TestClient
from tests.redis_server import RedisServer


def deep_list(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels):
        value = [value]
    return value


# -- issue #12 item 4: enqueue while Redis is down ---------------------------------------------


def outage_app(url: str) -> App:
    app = App(tasks=RedisTasks(url, consume=False, enqueue_timeout=0.5, retry_after=7))

    @app.task(name="noop")
    async def noop(i: int) -> None: ...

    @app.post("/jobs/{i}", status_code=202)
    async def enqueue(request: Request, i: int) -> dict[str, str]:
        return {"id": await request.app.tasks.enqueue(noop, i)}

    @app.get("/status/{task_id}")
    async def status(request: Request, task_id: str) -> dict[str, Any]:
        info = await request.app.tasks.status(task_id)
        return {"state": None if info is None else info.state.value}

    return app


def test_enqueue_with_redis_frozen_or_stopped_is_a_prompt_503(own_redis: RedisServer) -> None:
    assert issubclass(TasksUnavailable, ServiceUnavailable)
    app = outage_app(own_redis.url)
    with TestClient(app) as client:
        ok = client.post("/jobs/1")
        assert ok.status_code == 202

        own_redis.freeze()  # the process is there, the socket accepts, nothing answers
        try:
            t0 = time.monotonic()
            frozen = client.post("/jobs/2")
            elapsed = time.monotonic() - t0
            assert frozen.status_code == 503, frozen.text
            assert frozen.headers["retry-after"] == "7"
            assert "task queue is unavailable" in frozen.text
            assert "0.5s" in frozen.text
            assert elapsed < 2.0  # enqueue_timeout=0.5, not a 5 s hang
            assert client.get(f"/status/{ok.json()['id']}").status_code == 503
        finally:
            own_redis.thaw()
        assert client.post("/jobs/3").status_code == 202  # back once Redis answers

        own_redis.stop()  # connection refused: no wait at all
        t0 = time.monotonic()
        down = client.post("/jobs/4")
        assert down.status_code == 503 and down.headers["retry-after"] == "7"
        assert time.monotonic() - t0 < 2.0
        own_redis.start()
        assert client.post("/jobs/5").status_code == 202


# -- deep payloads ------------------------------------------------------------------------------


@pytest.fixture
async def backend(redis_url: str, prefix: str) -> AsyncIterator[RedisTasks]:
    tasks = RedisTasks(redis_url, prefix=prefix, max_concurrency=4, visibility_timeout=2)
    yield tasks
    await tasks.stop()


@pytest.mark.parametrize("levels", [30_000, 100_000])  # past every supported Python's limit
async def test_enqueue_of_an_over_deep_argument_is_a_clear_error(
    backend: RedisTasks, levels: int
) -> None:
    @backend.task(name="takes")
    async def takes(value: object) -> None: ...

    await backend.start()
    with pytest.raises(TypeError, match="task takes: its arguments are nested too deeply"):
        await backend.enqueue(takes, deep_list(levels))
    with pytest.raises(TypeError, match="nested too deeply"):
        await backend.enqueue(takes, value={"a": deep_list(levels)})


# past every supported Python's limit; 0: not deep, but a string that is not UTF-8
@pytest.mark.parametrize("levels", [30_000, 100_000, 0])
async def test_a_payload_too_deep_to_decode_is_dead_lettered_and_the_worker_goes_on(
    backend: RedisTasks, redis_url: str, prefix: str, levels: int
) -> None:
    ran: list[int] = []

    @backend.task(name="takes")
    async def takes(value: object) -> None:
        ran.append(1)

    @backend.task(name="fine")
    async def fine() -> str:
        return "ok"

    # Another producer (another language, an old version, a bug) wrote a payload nested
    # deeper than msgspec decodes: ([[[...]]], {}) as MessagePack.
    payload = (b"\x92" + b"\x91" * levels + b"\x90" + b"\x80" if levels
               else b"\x92\x91\xa1\x80\x80")  # (["\x80"], {})
    assert msgspec.msgpack.Decoder().decode(b"\x92\x90\x80") == [[], {}]
    client: aioredis.Redis = from_url(redis_url)
    try:
        task_id = "deep" + str(levels)
        await client.hset(
            f"{prefix}:task:{task_id}",
            mapping={"name": "takes", "payload": payload, "options": b"", "state": "queued",
                     "attempts": 0, "enqueued_at": repr(time.time())},
        )  # fmt: skip
        await client.xadd(
            f"{prefix}:stream",
            {"id": task_id, "name": "takes", "payload": payload, "options": b""},
        )
    finally:
        await client.aclose()
    await backend.start()
    async with asyncio.timeout(10):
        info = await backend.wait(task_id)
        assert info.state is TaskState.DEAD
        assert info.error is not None
        reason = info.error.removeprefix("BadPayload: the task's arguments cannot be decoded: ")
        if levels:
            assert reason == "nested too deeply"
        else:  # msgspec 0.18 raised UnicodeDecodeError, which status() and the worker let out
            assert "utf-8" in reason.lower()
        assert info.args == () and info.attempts == 1  # status() itself does not fail
        assert [d.id for d in await backend.dead_letters()] == [task_id]
        after = await backend.wait(await backend.enqueue(fine))
    assert after.state is TaskState.SUCCEEDED and after.result == "ok"
    assert ran == []


@pytest.mark.parametrize("levels", [1_000, 100_000])
async def test_in_memory_tasks_take_deep_arguments_as_they_are(levels: int) -> None:
    tasks = InMemoryTasks()
    depth: list[int] = []

    @tasks.task(name="measure")
    def measure(value: list[Any]) -> None:
        n = 0
        while value:
            value, n = value[0], n + 1
        depth.append(n)

    async with tasks:
        info = await tasks.wait(await tasks.enqueue(measure, deep_list(levels)))
    assert info.state is TaskState.SUCCEEDED and depth == [levels]


# -- commits survive blips -----------------------------------------------------------------------


async def test_a_commit_that_fails_is_retried_until_redis_answers(
    backend: RedisTasks, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    runs: list[int] = []

    @backend.task(name="once")
    async def once() -> str:
        runs.append(1)
        return "done"

    await backend.start()
    real = backend._scripts["finish"]
    failures = [RedisConnectionError("Connection reset by peer")] * 2

    async def flaky(**kwargs: Any) -> Any:
        # Fails after the commit was applied as often as before: both must be harmless.
        if failures:
            result = await real(**kwargs) if len(failures) == 1 else None
            del result
            raise failures.pop()
        return await real(**kwargs)

    backend._scripts["finish"] = flaky
    with caplog.at_level(logging.WARNING, logger="joey.tasks"):
        async with asyncio.timeout(10):
            info = await backend.wait(await backend.enqueue(once))
            # The second try was applied (wait() saw it); the third answers after a back-off.
            for _ in range(500):
                if any("recorded after" in r.getMessage() for r in caplog.records):
                    break
                await asyncio.sleep(0.01)
    assert (info.state, info.result, info.attempts) == (TaskState.SUCCEEDED, "done", 1)
    assert runs == [1]
    messages = [r.getMessage() for r in caplog.records]
    assert any("Redis unreachable" in m and "retrying until it is back" in m for m in messages)
    assert any("recorded after 3 tries" in m for m in messages)
    assert await backend.dead_letters() == []


async def test_a_frozen_redis_cannot_hang_a_worker(
    own_redis: RedisServer, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    # No socket timeout on the worker's client: its reads are bounded by redis_timeout.
    tasks = RedisTasks(own_redis.url, prefix=prefix, visibility_timeout=0.4, redis_timeout=0.3)

    @tasks.task(name="after")
    async def after() -> str:
        return "ran"

    async with tasks:
        with caplog.at_level(logging.ERROR, logger="joey.tasks"):
            own_redis.freeze()
            try:
                await asyncio.sleep(1.5)
            finally:
                own_redis.thaw()
        async with asyncio.timeout(10):
            info = await tasks.wait(await tasks.enqueue(after))
        async with asyncio.timeout(5):
            await tasks.stop()
    assert info.state is TaskState.SUCCEEDED
    assert any(
        "Redis did not answer within redis_timeout=0.3s" in r.getMessage() for r in caplog.records
    )


async def test_workers_go_on_after_redis_lost_the_queue(
    own_redis: RedisServer, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis lost its data (a primary killed before its replica had the queue, a restart
    without persistence): the consumer group is gone. Before, every read failed with NOGROUP
    and the worker never ran a task again; now it creates the group again, says what was
    lost, and runs what is enqueued since."""
    tasks = RedisTasks(own_redis.url, prefix=prefix, max_concurrency=2, visibility_timeout=2)

    @tasks.task(name="echo")
    async def echo(n: int) -> int:
        return n

    async with tasks:
        async with asyncio.timeout(10):
            assert (await tasks.wait(await tasks.enqueue(echo, 1))).result == 1
        client = aioredis.Redis.from_url(own_redis.url)
        await client.flushall()
        await client.aclose()
        task_id = await tasks.enqueue(echo, 2)
        async with asyncio.timeout(20):
            info = await tasks.wait(task_id)
    assert info.state is TaskState.SUCCEEDED and info.result == 2
    assert "consumer group in Redis is gone" in caplog.text
