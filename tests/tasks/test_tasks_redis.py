"""RedisTasks in one process against a real redis-server: the same behaviour as in memory."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
import redis.asyncio as aioredis

from joey._redis import from_url
from joey.tasks import Backoff, QueueFull, RedisTasks, TasksNotRunning, TaskState

NO_WAIT = Backoff(base=0.0, jitter=0.0)


@pytest.fixture
async def backend(redis_url: str, prefix: str) -> AsyncIterator[RedisTasks]:
    tasks = RedisTasks(redis_url, prefix=prefix, max_concurrency=4, visibility_timeout=2)
    yield tasks
    await tasks.stop()


async def test_enqueue_run_and_status(backend: RedisTasks) -> None:
    @backend.task(name="add")
    async def add(a: int, b: int = 0) -> dict[str, int]:
        return {"sum": a + b}

    await backend.start()
    task_id = await backend.enqueue(add, 2, b=3)
    async with asyncio.timeout(10):
        info = await backend.wait(task_id)
    assert info.state is TaskState.SUCCEEDED
    assert info.result == {"sum": 5}
    assert info.args == (2,) and info.kwargs == {"b": 3}
    assert (info.attempts, info.max_attempts, info.name) == (1, 1, "add")
    assert await backend.status("unknown") is None
    with pytest.raises(LookupError):
        await backend.wait("unknown")


async def test_sync_task_and_unencodable_result(backend: RedisTasks) -> None:
    @backend.task(name="obj")
    def obj() -> object:
        return object()

    await backend.start()
    async with asyncio.timeout(10):
        info = await backend.wait(await backend.enqueue(obj))
    assert info.state is TaskState.SUCCEEDED and info.result is None


async def test_retries_dead_letters_and_requeue(backend: RedisTasks) -> None:
    fixed = False

    @backend.task(name="flaky", retries=2, backoff=NO_WAIT)
    async def flaky() -> str:
        if not fixed:
            raise ValueError("broken")
        return "ok"

    await backend.start()
    task_id = await backend.enqueue(flaky)
    async with asyncio.timeout(10):
        info = await backend.wait(task_id)
    assert info.state is TaskState.DEAD
    assert (info.attempts, info.max_attempts, info.error) == (3, 3, "ValueError: broken")
    assert [d.id for d in await backend.dead_letters()] == [task_id]

    fixed = True
    assert await backend.requeue(task_id)
    assert not await backend.requeue(task_id)
    async with asyncio.timeout(10):
        info = await backend.wait(task_id)
    assert info.state is TaskState.SUCCEEDED and info.result == "ok" and info.attempts == 1
    assert await backend.dead_letters() == []


async def test_retry_then_success_with_backoff(backend: RedisTasks) -> None:
    calls = 0

    @backend.task(name="twice", retries=1, backoff=Backoff(base=0.05))
    async def twice() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("first")
        return calls

    await backend.start()
    async with asyncio.timeout(10):
        info = await backend.wait(await backend.enqueue(twice))
    assert (info.state, info.attempts, info.result) == (TaskState.SUCCEEDED, 2, 2)


async def test_timeout_and_per_call_options(backend: RedisTasks) -> None:
    @backend.task(name="slow", timeout=0.05)
    async def slow() -> str:
        await asyncio.sleep(0.2)
        return "done"

    await backend.start()
    async with asyncio.timeout(10):
        info = await backend.wait(await backend.enqueue(slow))
        assert info.state is TaskState.DEAD
        assert info.error is not None and info.error.startswith("TaskTimeout")
        lifted = backend.options(timeout=float("inf"))
        info = await backend.wait(await lifted.enqueue(slow))
        assert info.state is TaskState.SUCCEEDED


async def test_delay(backend: RedisTasks) -> None:
    @backend.task(name="later")
    async def later() -> str:
        return "ran"

    await backend.start()
    task_id = await backend.options(delay=0.2).enqueue(later)
    info = await backend.status(task_id)
    assert info is not None and info.state is TaskState.QUEUED and info.run_at is not None
    async with asyncio.timeout(10):
        info = await backend.wait(task_id)
    assert info.state is TaskState.SUCCEEDED
    assert info.started_at is not None and info.started_at >= info.enqueued_at + 0.15


async def test_max_concurrency_is_exact(backend: RedisTasks) -> None:
    active = peak = 0
    full, release = asyncio.Event(), asyncio.Event()

    @backend.task(name="work")
    async def work() -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        if active == 4:
            full.set()
        await release.wait()
        active -= 1

    await backend.start()
    ids = [await backend.enqueue(work) for _ in range(12)]
    async with asyncio.timeout(10):
        await full.wait()
        # A run begins before its start reaches Redis: status() may say QUEUED for a moment.
        for _ in range(500):
            states = [(await backend.status(i)).state for i in ids]  # type: ignore[union-attr]
            if states.count(TaskState.RUNNING) == 4:
                break
            await asyncio.sleep(0.01)
        assert (states.count(TaskState.RUNNING), states.count(TaskState.QUEUED)) == (4, 8)
        release.set()
        for task_id in ids:
            assert (await backend.wait(task_id)).state is TaskState.SUCCEEDED
    assert peak == 4


async def test_queue_full_and_unencodable_arguments(redis_url: str, prefix: str) -> None:
    tasks = RedisTasks(redis_url, prefix=prefix, consume=False, max_queue=2, when_full="raise")

    @tasks.task(name="noop")
    async def noop(value: object) -> None: ...

    async with tasks:
        await tasks.enqueue(noop, 1)
        await tasks.options(delay=60).enqueue(noop, 2)  # delayed tasks count too
        with pytest.raises(QueueFull):
            await tasks.enqueue(noop, 3)
        waiting = asyncio.create_task(tasks.options(when_full="wait").enqueue(noop, 4))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        with pytest.raises(TypeError, match="msgspec"):
            await tasks.enqueue(noop, object())
    with pytest.raises(TasksNotRunning):
        await waiting
    with pytest.raises(TasksNotRunning):
        await tasks.enqueue(noop, 5)


async def test_unknown_name_goes_dead_in_the_worker(backend: RedisTasks) -> None:
    await backend.start()
    task_id = await backend.enqueue("not.registered", 1)
    async with asyncio.timeout(10):
        info = await backend.wait(task_id)
    assert info.state is TaskState.DEAD
    assert info.error is not None and info.error.startswith("TaskNotRegistered")


async def test_stop_hands_running_tasks_back(
    redis_url: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    first = RedisTasks(redis_url, prefix=prefix, shutdown_timeout=0.05)
    second = RedisTasks(redis_url, prefix=prefix)
    started = asyncio.Event()
    calls = 0

    async def hangs_once() -> str:
        nonlocal calls
        calls += 1
        started.set()
        if calls == 1:
            await asyncio.Event().wait()
        return "second try"

    first.task(name="hangs_once")(hangs_once)
    second.task(name="hangs_once")(hangs_once)
    await first.start()
    task_id = await first.enqueue(hangs_once)
    async with asyncio.timeout(10):
        await started.wait()
        with caplog.at_level(logging.WARNING, logger="joey.tasks"):
            await first.stop()
        info = await first_status(redis_url, prefix, task_id)
        assert info == b"queued"
        assert any("handed back" in r.getMessage() for r in caplog.records)
        async with second:
            info2 = await second.wait(task_id)
    # The cancelled attempt is not counted against the task's retries.
    assert (info2.state, info2.result, info2.attempts) == (TaskState.SUCCEEDED, "second try", 1)


async def first_status(url: str, prefix: str, task_id: str) -> bytes | None:
    client = from_url(url)
    try:
        return cast(bytes | None, await client.hget(f"{prefix}:task:{task_id}", "state"))
    finally:
        await client.aclose()


async def test_two_prefixes_are_independent(redis_url: str, prefix: str) -> None:
    one = RedisTasks(redis_url, prefix=prefix + "a", consume=False)
    two = RedisTasks(redis_url, prefix=prefix + "b", consume=False)
    async with one, two:
        task_id = await one.enqueue("anything")
        assert await two.status(task_id) is None
        assert await one.status(task_id) is not None


async def test_start_and_stop_are_idempotent(backend: RedisTasks) -> None:
    @backend.task(name="one")
    async def one() -> int:
        return 1

    await backend.stop()
    for _ in range(2):
        await backend.start()
        await backend.start()
        async with asyncio.timeout(10):
            assert (await backend.wait(await backend.enqueue(one))).result == 1
        await asyncio.gather(backend.stop(), backend.stop())
    with pytest.raises(TasksNotRunning):
        await backend.status("x")


# -- stopping promptly: the SIGTERM flake of the worker test -----------------------------------


async def test_stop_is_prompt_across_many_start_stop_cycles(redis_url: str, prefix: str) -> None:
    """The real race: on Python 3.11 redis-py's `wait_for` could lose the cancellation that
    stop() sent a loop (busy here: a promote turn every 2 ms), and stop() waited forever.
    Before the fix about one cycle in six hung."""
    for i in range(30):
        tasks = RedisTasks(
            redis_url, prefix=f"{prefix}{i}", poll_interval=0.002, visibility_timeout=0.05
        )
        await tasks.start()
        await asyncio.sleep(0.002 * (i % 7))
        async with asyncio.timeout(5):
            await tasks.stop()


async def test_stop_cancels_again_a_loop_that_swallowed_its_cancellation(
    redis_url: str, prefix: str
) -> None:
    swallowed: list[int] = []

    class Stubborn(RedisTasks):
        async def _promote_loop(self) -> None:
            # What a loop does after `wait_for` lost its cancellation: it carries on.
            while True:
                try:
                    await asyncio.sleep(3600)
                except asyncio.CancelledError:
                    if swallowed:
                        raise
                    swallowed.append(1)

    tasks = Stubborn(redis_url, prefix=prefix)
    await tasks.start()
    await asyncio.sleep(0)
    async with asyncio.timeout(5):
        await tasks.stop()
    assert swallowed == [1]


@pytest.mark.parametrize(
    ("query", "idle"),
    [
        # redis-py's own default: 5 s of socket timeout in redis-py 8, none in 5
        ("", 6.0),
        # a client set up by the URL: a short socket timeout, and health checks (a PING before
        # a command on a connection idle for longer than the interval)
        ("?socket_timeout=0.3&health_check_interval=1", 1.5),
    ],
    ids=["redis-py-default", "url-timeout-and-health-checks"],
)
async def test_an_idle_worker_never_errors_and_starts_a_new_task_at_once(
    redis_url: str, prefix: str, query: str, idle: float, caplog: pytest.LogCaptureFixture
) -> None:
    # visibility_timeout=30 means XREADGROUP BLOCK 7500 ms between reclaims: longer than any
    # of these socket timeouts. It used to fail past redis-py 8's default one, logged at
    # ERROR every ~6 s; a task enqueued while the loop waited to restart began ~1 s late, and
    # one that the failed read had received waited for visibility_timeout.
    tasks = RedisTasks(f"{redis_url}{query}", prefix=prefix, visibility_timeout=30)
    began: list[float] = []

    @tasks.task(name="note")
    async def note() -> None:
        began.append(time.monotonic())

    with caplog.at_level(logging.WARNING, logger="joey.tasks"):
        async with tasks:
            await asyncio.sleep(idle)  # longer than the socket timeout, idle all along
            enqueued = time.monotonic()
            async with asyncio.timeout(10):
                await tasks.wait(await tasks.enqueue(note))
    assert [r.getMessage() for r in caplog.records] == []
    # A blocked read wakes at once (about 1 ms); the bound leaves room for a loaded machine,
    # far below the restart delay (1 s) a failed read costs.
    assert began[0] - enqueued < 0.25


async def test_a_loop_that_hits_a_redis_error_is_logged_and_restarted(
    redis_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    monkeypatch.setattr("joey.tasks.redis.consumer._RESTART_DELAY", 0.01)
    tasks = RedisTasks(redis_url, prefix=prefix)

    @tasks.task(name="after")
    async def after() -> int:
        return 1

    failures = [RedisConnectionError("server restarting")]
    for cls in (aioredis.Redis, aioredis.RedisCluster):  # (a cluster with JOEY_TEST_REDIS)
        real = cls.xautoclaim

        async def flaky_xautoclaim(self: Any, *args: object, real: Any = real,
                                   **kwargs: object) -> object:
            if failures:
                raise failures.pop()
            return await real(self, *args, **kwargs)

        monkeypatch.setattr(cls, "xautoclaim", flaky_xautoclaim)
    with caplog.at_level(logging.ERROR, logger="joey.tasks"):
        async with tasks:
            async with asyncio.timeout(10):
                info = await tasks.wait(await tasks.enqueue(after))
    assert info.state is TaskState.SUCCEEDED
    [line] = [r.getMessage() for r in caplog.records if "failed, restarting" in r.getMessage()]
    assert "_consume_loop" in line and "server restarting" in line


async def test_runs_are_reported_to_the_apps_metrics(backend: RedisTasks) -> None:
    from joey import App
    from joey.metrics import Metrics
    from tests.test_metrics import task_values

    metrics = Metrics()
    App(metrics=metrics, tasks=backend)

    @backend.task(name="ok")
    async def ok() -> None:
        pass

    @backend.task(name="broken", retries=1, backoff=NO_WAIT)
    async def broken() -> None:
        raise ValueError("broken")

    await backend.start()
    async with asyncio.timeout(10):
        await backend.wait(await backend.enqueue(ok))
        await backend.wait(await backend.enqueue(broken))
        # the worker counts an outcome once Redis has recorded it: wait() may return first
        for _ in range(1000):
            if task_values(metrics, "broken")["dead"] and task_values(metrics, "ok")["runs"]:
                break
            await asyncio.sleep(0.01)
    ok_counts, broken_counts = task_values(metrics, "ok"), task_values(metrics, "broken")
    assert ok_counts == {"enqueued": 1, "started": 1, "succeeded": 1, "failed": 0, "dead": 0,
                         "runs": 1, "queued": 0}
    assert broken_counts == {"enqueued": 1, "started": 2, "succeeded": 0, "failed": 2,
                             "dead": 1, "runs": 2, "queued": 0}
    # what is in Redis is read at the scrape
    await backend.options(delay=3600).enqueue(ok)
    await metrics.refresh()
    text = metrics.exposition()[0].decode()
    assert 'joey_tasks_in_redis{state="scheduled",task="ok"} 1.0' in text
    assert 'joey_tasks_in_redis{state="dead",task="broken"} 1.0' in text
