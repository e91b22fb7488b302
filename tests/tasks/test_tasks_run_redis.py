"""The transitions of a worker's run (joey/tasks/redis/run.py) that no other test drives, each
against a real redis-server: the races between a finish, a heartbeat and `stop()`, and the
starts of reclaimed entries. Redis answers late, or not at all, through wrappers of
the backend's scripts; another worker holds an entry by claiming it, as its heartbeat would."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from joey.tasks import RedisTasks, TaskState
from joey.tasks.redis.run import TRANSITIONS, IllegalRunEvent, RunEvent, RunState
from tests.tasks.test_tasks_start import owner

Script = Callable[..., Awaitable[Any]]


def wrap(tasks: RedisTasks, name: str, around: Callable[[Script], Script]) -> None:
    """Put `around(real)` in place of one of the backend's Lua scripts."""
    tasks._scripts[name] = around(tasks._scripts[name])


def reset() -> RedisConnectionError:
    return RedisConnectionError("Connection reset by peer")


async def the_entry(client: aioredis.Redis, prefix: str) -> bytes:
    [(entry_id, _)] = cast(list[Any], await client.xrange(f"{prefix}:stream"))
    return cast(bytes, entry_id)


@contextlib.asynccontextmanager
async def held_by_another_worker(
    client: aioredis.Redis, prefix: str, entry_id: bytes
) -> AsyncIterator[None]:
    """Another worker takes the entry over and keeps it, claiming it again every 50 ms as its
    heartbeats would (so this worker's XAUTOCLAIM never takes it back)."""
    stream = f"{prefix}:stream"
    await client.xclaim(stream, "workers", "other", 0, [entry_id])

    async def beat() -> None:
        while True:
            await asyncio.sleep(0.05)
            await client.xclaim(stream, "workers", "other", 0, [entry_id], justid=True)

    beating = asyncio.create_task(beat())
    try:
        yield
    finally:
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beating


async def logged(caplog: pytest.LogCaptureFixture, text: str) -> None:
    """Until a record holding `text` was logged (the caller bounds the wait)."""
    while not any(text in r.getMessage() for r in caplog.records):  # noqa: ASYNC110
        await asyncio.sleep(0.01)


# -- a running run --------------------------------------------------------------------------------


async def running(client: aioredis.Redis, prefix: str, task_id: str) -> None:
    """Until the task's record says RUNNING (the caller bounds the wait)."""
    while await client.hget(f"{prefix}:task:{task_id}", "state") != b"running":  # noqa: ASYNC110
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("beaten", [False, True], ids=["first-delivery", "start-recorded"])
@pytest.mark.transitions("running:cancelled")
async def test_stop_hands_back_a_running_run_and_does_not_count_it(
    redis_url: str, prefix: str, client: aioredis.Redis, beaten: bool
) -> None:
    # Whether nothing recorded its start yet, or a heartbeat did: its attempt is not counted.
    tasks = RedisTasks(redis_url, prefix=prefix, shutdown_timeout=0.1, visibility_timeout=0.6)
    began = asyncio.Event()

    @tasks.task(name="hangs")
    async def hangs() -> None:
        began.set()
        await asyncio.Event().wait()

    await tasks.start()
    task_id = await tasks.enqueue(hangs)
    async with asyncio.timeout(10):
        await began.wait()
        if beaten:
            await running(client, prefix, task_id)
        await tasks.stop()
    async with RedisTasks(redis_url, prefix=prefix, consume=False) as reader:
        info = await reader.status(task_id)
    assert info is not None and (info.state, info.attempts) == (TaskState.QUEUED, 0)
    assert await client.hget(f"{prefix}:task:{task_id}", "deliveries") == b"0"
    assert await client.xlen(f"{prefix}:stream") == 1  # back in the stream, for any worker
    [(_, fields)] = cast(list[Any], await client.xrange(f"{prefix}:stream"))
    assert (fields[b"attempt"], fields[b"failures"]) == (b"1", b"0")  # the same attempt again


# -- a success whose finish cannot reach Redis ----------------------------------------------------


def unreachable(real: Script) -> Script:
    async def finish(**kwargs: Any) -> Any:
        raise reset()

    return finish


@pytest.mark.transitions("committing:gave_up")
async def test_a_success_whose_finish_cannot_be_recorded_is_given_up_after_commit_timeout(
    redis_url: str, prefix: str, client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    tasks = RedisTasks(redis_url, prefix=prefix, visibility_timeout=30, commit_timeout=0.3)

    @tasks.task(name="quick")
    async def quick() -> str:
        return "done"

    async with tasks:
        wrap(tasks, "finish", unreachable)
        with caplog.at_level(logging.WARNING, logger="joey.tasks"):
            task_id = await tasks.enqueue(quick)
            async with asyncio.timeout(10):
                await logged(caplog, "(ok): not recorded, Redis unreachable for commit_timeout")
        info = await tasks.status(task_id)
        # Still pending for this worker: taken over once idle past visibility_timeout.
        assert await owner(client, prefix) == [tasks.consumer]
    assert info is not None and info.state in (TaskState.QUEUED, TaskState.RUNNING)
    assert info.result is None


@pytest.mark.transitions("committing:cancelled")
async def test_stop_hands_back_a_success_whose_finish_waits_for_redis(
    redis_url: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    tasks = RedisTasks(redis_url, prefix=prefix, shutdown_timeout=0.1)

    @tasks.task(name="quick")
    async def quick() -> str:
        return "done"

    await tasks.start()
    wrap(tasks, "finish", unreachable)
    with caplog.at_level(logging.WARNING, logger="joey.tasks"):
        task_id = await tasks.enqueue(quick)
        async with asyncio.timeout(10):
            await logged(caplog, "(ok): Redis unreachable")
            await tasks.stop()
    async with RedisTasks(redis_url, prefix=prefix, consume=False) as reader:
        info = await reader.status(task_id)
    assert info is not None and (info.state, info.attempts) == (TaskState.QUEUED, 0)
    assert any("handed back to the queue: quick x1" in r.getMessage() for r in caplog.records)


@pytest.mark.transitions("committing:taken_over", "committing:recorded")
async def test_a_finish_applied_just_before_a_heartbeat_is_not_mistaken_for_a_takeover(
    redis_url: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The finish acks the entry; a heartbeat that reads the pending list before the run has
    # taken the finish's answer finds the entry gone. It used to warn that the task had been
    # taken over by another worker and that its result would not be recorded: it was.
    tasks = RedisTasks(redis_url, prefix=prefix, visibility_timeout=0.6)
    applied, beaten = asyncio.Event(), asyncio.Event()

    @tasks.task(name="quick")
    async def quick() -> str:
        return "done"

    def finish_then_a_beat(real: Script) -> Script:
        async def finish(**kwargs: Any) -> Any:
            reply = await real(**kwargs)
            applied.set()
            await beaten.wait()  # a heartbeat runs before the run takes this answer
            return reply

        return finish

    def beat_after_the_finish(real: Script) -> Script:
        async def heartbeat(**kwargs: Any) -> Any:
            await applied.wait()
            try:
                return await real(**kwargs)
            finally:
                beaten.set()

        return heartbeat

    async with tasks:
        wrap(tasks, "finish", finish_then_a_beat)
        wrap(tasks, "heartbeat", beat_after_the_finish)
        with caplog.at_level(logging.WARNING, logger="joey.tasks"):
            async with asyncio.timeout(10):
                info = await tasks.wait(await tasks.enqueue(quick))
                await beaten.wait()
    assert (info.state, info.result) == (TaskState.SUCCEEDED, "done")
    assert not any("taken over" in r.getMessage() for r in caplog.records)


# -- the start of a reclaimed entry ---------------------------------------------------------------


async def left_by_a_killed_worker(redis_url: str, prefix: str, client: aioredis.Redis) -> str:
    """A task read by a worker that was killed before it started it: pending for that worker."""
    async with RedisTasks(redis_url, prefix=prefix, consume=False) as producer:
        task_id = await producer.enqueue("job")
    await client.xreadgroup("workers", "killed-worker", {f"{prefix}:stream": ">"}, count=1)
    return task_id


def a_worker(redis_url: str, prefix: str, runs: list[int], **options: Any) -> RedisTasks:
    tasks = RedisTasks(redis_url, prefix=prefix, visibility_timeout=0.3, **options)

    @tasks.task(name="job")
    async def job() -> str:
        runs.append(1)
        return "done"

    return tasks


@pytest.mark.transitions("read:reclaimed", "waiting:start_skip")
async def test_a_reclaimed_entry_whose_task_expired_is_acked_and_not_run(
    redis_url: str, prefix: str, client: aioredis.Redis
) -> None:
    task_id = await left_by_a_killed_worker(redis_url, prefix, client)
    await client.delete(f"{prefix}:task:{task_id}")
    runs: list[int] = []
    async with a_worker(redis_url, prefix, runs):
        async with asyncio.timeout(10):
            while await client.xlen(f"{prefix}:stream"):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    assert runs == []
    assert await owner(client, prefix) == []
    assert await client.exists(f"{prefix}:task:{task_id}") == 0


@pytest.mark.transitions("waiting:start_lost")
async def test_a_reclaimed_entry_past_max_deliveries_is_dead_and_not_run(
    redis_url: str, prefix: str, client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    task_id = await left_by_a_killed_worker(redis_url, prefix, client)
    await client.hset(f"{prefix}:task:{task_id}", "deliveries", 1)  # the killed worker's
    runs: list[int] = []
    with caplog.at_level(logging.ERROR, logger="joey.tasks"):
        async with a_worker(redis_url, prefix, runs, max_deliveries=1) as tasks:
            async with asyncio.timeout(10):
                info = await tasks.wait(task_id)
    assert runs == []
    assert info.state is TaskState.DEAD and info.error is not None
    assert info.error.startswith("WorkerLost: delivered 1 times")
    assert any(f"task job {task_id} is dead: delivered 1 times" in r.getMessage()
               for r in caplog.records)  # fmt: skip


@pytest.mark.transitions("waiting:start_gone", "waiting:start_run")
async def test_a_reclaimed_entry_another_worker_took_first_is_left_to_it(
    redis_url: str, prefix: str, client: aioredis.Redis
) -> None:
    task_id = await left_by_a_killed_worker(redis_url, prefix, client)
    runs: list[int] = []
    tasks = a_worker(redis_url, prefix, runs)
    async with tasks:

        def raced(real: Script) -> Script:
            calls: list[int] = []

            async def start(**kwargs: Any) -> Any:
                calls.append(1)
                if len(calls) == 1:  # another worker took it between our XAUTOCLAIM and this
                    entry_id = kwargs["args"][6]
                    await client.xclaim(f"{prefix}:stream", "workers", "other", 0, [entry_id])
                return await real(**kwargs)

            return start

        wrap(tasks, "start", raced)
        async with asyncio.timeout(10):
            # "other" dies too: once its entry is idle past visibility_timeout, this worker
            # takes it over again and runs it.
            info = await tasks.wait(task_id)
    # the killed worker's read counts as a run begun (a first delivery runs as it is read)
    assert (info.state, info.result, info.attempts) == (TaskState.SUCCEEDED, "done", 2)
    assert runs == [1]


@pytest.mark.transitions("waiting:start_failed")
async def test_a_reclaimed_entry_whose_start_failed_stays_pending_and_is_taken_over_again(
    redis_url: str, prefix: str, client: aioredis.Redis, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setattr("joey.tasks.redis.consumer._RESTART_DELAY", 0.01)
    task_id = await left_by_a_killed_worker(redis_url, prefix, client)
    runs: list[int] = []
    tasks = a_worker(redis_url, prefix, runs)
    async with tasks:

        def fails_once(real: Script) -> Script:
            calls: list[int] = []

            async def start(**kwargs: Any) -> Any:
                calls.append(1)
                if len(calls) == 1:
                    raise reset()
                return await real(**kwargs)

            return start

        wrap(tasks, "start", fails_once)
        with caplog.at_level(logging.ERROR, logger="joey.tasks"):
            async with asyncio.timeout(10):
                info = await tasks.wait(task_id)
    # (2: the killed worker's read counts as a run begun, and this worker's one run)
    assert (info.state, info.result, info.attempts) == (TaskState.SUCCEEDED, "done", 2)
    assert runs == [1]
    assert any("_consume_loop failed, restarting" in r.getMessage() for r in caplog.records)


# -- an event the table has no transition for -----------------------------------------------------


async def test_an_event_missing_from_the_table_is_logged_as_a_bug_and_the_task_is_not_lost(
    redis_url: str, prefix: str, client: aioredis.Redis, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    for state in (RunState.RUNNING,):  # a table that forgot a success
        moves = {e: move for e, move in TRANSITIONS[state].items() if e is not RunEvent.SUCCEEDED}
        monkeypatch.setitem(TRANSITIONS, state, moves)
    tasks = RedisTasks(redis_url, prefix=prefix, visibility_timeout=30)

    @tasks.task(name="quick")
    async def quick() -> str:
        return "done"

    await tasks.start()
    with caplog.at_level(logging.ERROR, logger="joey.tasks"):
        task_id = await tasks.enqueue(quick)
        async with asyncio.timeout(10):
            await logged(caplog, f"task quick {task_id}: the worker failed running it")
        await tasks.stop()  # what it held goes back to the stream
    [record] = [r for r in caplog.records if "the worker failed" in r.getMessage()]
    assert record.exc_info is not None and isinstance(record.exc_info[1], IllegalRunEvent)
    assert "no transition for succeeded in state" in str(record.exc_info[1])
    assert await client.hget(f"{prefix}:task:{task_id}", "state") == b"queued"
    assert await client.xlen(f"{prefix}:stream") == 1  # for the next worker
