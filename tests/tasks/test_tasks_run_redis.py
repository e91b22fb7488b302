"""The transitions of a worker's run (joey/tasks/redis/run.py) that no other test drives, each
against a real redis-server: the races between a start, a finish, a heartbeat and `stop()`,
and the starts of reclaimed entries. Redis answers late, or not at all, through wrappers of
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

from joey.tasks import Backoff, RedisTasks, TaskState
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


# -- a run whose entry another worker took over ---------------------------------------------------


@pytest.mark.transitions("starting:taken_over", "starting:start_gone", "done:cancelled")
async def test_a_run_whose_entry_was_taken_over_before_its_start_answered_is_cancelled(
    redis_url: str, prefix: str, client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    tasks = RedisTasks(redis_url, prefix=prefix, visibility_timeout=1.5)
    began, release = asyncio.Event(), asyncio.Event()
    cancelled: list[int] = []

    @tasks.task(name="slow")
    async def slow() -> None:
        began.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(1)
            raise

    def held(real: Script) -> Script:
        async def start(**kwargs: Any) -> Any:
            await release.wait()
            return await real(**kwargs)

        return start

    async with tasks:
        wrap(tasks, "start", held)
        with caplog.at_level(logging.WARNING, logger="joey.tasks"):
            task_id = await tasks.enqueue(slow)
            async with asyncio.timeout(10):
                await began.wait()
                async with held_by_another_worker(client, prefix, await the_entry(client, prefix)):
                    await logged(caplog, f"task slow {task_id} was taken over")
                    release.set()  # the start answers 'gone': the run is cancelled
                    while not cancelled:  # noqa: ASYNC110
                        await asyncio.sleep(0.01)
                    assert await owner(client, prefix) == ["other"]
            info = await tasks.status(task_id)
    assert info is not None and (info.state, info.attempts) == (TaskState.QUEUED, 0)


@pytest.mark.transitions("starting:start_gone", "done:taken_over")
async def test_a_revoked_run_still_ending_is_not_warned_about_when_a_heartbeat_finds_it_gone(
    redis_url: str, prefix: str, client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    tasks = RedisTasks(redis_url, prefix=prefix, visibility_timeout=1.5)
    began, cancelled, cleaned = asyncio.Event(), asyncio.Event(), asyncio.Event()
    release_start, release_beat, beaten = asyncio.Event(), asyncio.Event(), asyncio.Event()

    @tasks.task(name="slow")
    async def slow() -> None:
        began.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            await cleaned.wait()  # its own clean-up, after the revoke
            raise

    def start_held(real: Script) -> Script:
        async def start(**kwargs: Any) -> Any:
            await release_start.wait()
            return await real(**kwargs)

        return start

    def beat_held(real: Script) -> Script:
        async def heartbeat(**kwargs: Any) -> Any:
            await release_beat.wait()
            try:
                return await real(**kwargs)
            finally:
                beaten.set()

        return heartbeat

    async with tasks:
        wrap(tasks, "start", start_held)
        wrap(tasks, "heartbeat", beat_held)
        with caplog.at_level(logging.WARNING, logger="joey.tasks"):
            await tasks.enqueue(slow)
            async with asyncio.timeout(10):
                await began.wait()
                async with held_by_another_worker(client, prefix, await the_entry(client, prefix)):
                    release_start.set()  # 'gone': revoked, and its task cleans up
                    await cancelled.wait()
                    release_beat.set()  # the heartbeat finds the entry another worker's
                    await beaten.wait()
                    cleaned.set()
    assert not any("taken over" in r.getMessage() for r in caplog.records)


@pytest.mark.transitions("confirming:taken_over", "confirming:start_gone")
async def test_a_failure_whose_entry_was_taken_over_before_its_start_answered_records_nothing(
    redis_url: str, prefix: str, client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    tasks = RedisTasks(redis_url, prefix=prefix, visibility_timeout=1.5)
    release, answered = asyncio.Event(), asyncio.Event()

    @tasks.task(name="fails")
    async def fails() -> None:
        raise ValueError("no")

    def held(real: Script) -> Script:
        async def start(**kwargs: Any) -> Any:
            await release.wait()
            try:
                return await real(**kwargs)
            finally:
                answered.set()

        return start

    async with tasks:
        wrap(tasks, "start", held)
        with caplog.at_level(logging.WARNING, logger="joey.tasks"):
            task_id = await tasks.enqueue(fails)
            async with asyncio.timeout(10):
                async with held_by_another_worker(client, prefix, await the_entry(client, prefix)):
                    await logged(caplog, f"task fails {task_id} was taken over")
                    release.set()
                    await answered.wait()
                    info = await tasks.status(task_id)
                    assert await owner(client, prefix) == ["other"]
            assert await tasks.dead_letters() == []
    assert info is not None and (info.state, info.attempts, info.error) == (
        TaskState.QUEUED, 0, None
    )


# -- a failure waiting for its start --------------------------------------------------------------


@pytest.mark.transitions("confirming:start_skip")
async def test_a_failure_whose_task_ended_before_its_start_answered_records_nothing(
    redis_url: str, prefix: str, client: aioredis.Redis
) -> None:
    tasks = RedisTasks(redis_url, prefix=prefix, visibility_timeout=30)
    failed, release, answered = asyncio.Event(), asyncio.Event(), asyncio.Event()

    @tasks.task(name="fails")
    async def fails() -> None:
        failed.set()
        raise ValueError("no")

    def held(real: Script) -> Script:
        async def start(**kwargs: Any) -> Any:
            await release.wait()
            try:
                return await real(**kwargs)
            finally:
                answered.set()

        return start

    async with tasks:
        wrap(tasks, "start", held)
        task_id = await tasks.enqueue(fails)
        async with asyncio.timeout(10):
            await failed.wait()
            await client.delete(f"{prefix}:task:{task_id}")  # its record expired meanwhile
            release.set()  # 'skip'
            await answered.wait()
        assert await tasks.dead_letters() == []
    assert await client.exists(f"{prefix}:task:{task_id}") == 0  # nothing recorded
    assert await client.xlen(f"{prefix}:stream") == 0  # the start acked the entry
    assert await owner(client, prefix) == []


@pytest.mark.transitions("starting:failed", "confirming:cancelled")
async def test_stop_hands_back_a_failure_still_waiting_for_its_start(
    redis_url: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    tasks = RedisTasks(redis_url, prefix=prefix, shutdown_timeout=0.1, redis_timeout=0.3)
    failed = asyncio.Event()

    @tasks.task(name="fails")
    async def fails() -> None:
        failed.set()
        raise ValueError("no")

    def never(real: Script) -> Script:
        async def start(**kwargs: Any) -> Any:
            await asyncio.Event().wait()
            return await real(**kwargs)  # pragma: no cover - never answers

        return start

    await tasks.start()
    wrap(tasks, "start", never)
    task_id = await tasks.enqueue(fails)
    with caplog.at_level(logging.WARNING, logger="joey.tasks"):
        async with asyncio.timeout(10):
            await failed.wait()
            await tasks.stop()
    async with RedisTasks(redis_url, prefix=prefix, consume=False) as reader:
        info = await reader.status(task_id)
        assert await reader.dead_letters() == []
    assert info is not None and (info.state, info.attempts, info.error) == (
        TaskState.QUEUED, 0, None
    )
    assert any("handed back to the queue: fails x1" in r.getMessage() for r in caplog.records)


# -- a run whose start is recorded ----------------------------------------------------------------


async def running(client: aioredis.Redis, prefix: str, task_id: str) -> None:
    """Until the task's record says RUNNING (the caller bounds the wait)."""
    while await client.hget(f"{prefix}:task:{task_id}", "state") != b"running":  # noqa: ASYNC110
        await asyncio.sleep(0.01)


@pytest.mark.transitions("running:failed")
async def test_a_run_that_fails_after_its_start_is_recorded_commits_the_retry(
    redis_url: str, prefix: str, client: aioredis.Redis
) -> None:
    tasks = RedisTasks(redis_url, prefix=prefix, visibility_timeout=30)
    runs: list[int] = []

    @tasks.task(name="flaky", retries=1, backoff=Backoff(base=0.0, jitter=0.0))
    async def flaky() -> str:
        runs.append(1)
        if len(runs) == 1:
            await running(client, prefix, task_id)
            raise ValueError("first time")
        return "second time"

    async with tasks:
        task_id = await tasks.enqueue(flaky)
        async with asyncio.timeout(10):
            info = await tasks.wait(task_id)
    assert (info.state, info.result, info.attempts) == (TaskState.SUCCEEDED, "second time", 2)


@pytest.mark.transitions("running:cancelled")
async def test_stop_hands_back_a_run_whose_start_is_recorded_and_does_not_count_it(
    redis_url: str, prefix: str, client: aioredis.Redis
) -> None:
    tasks = RedisTasks(redis_url, prefix=prefix, shutdown_timeout=0.1)

    @tasks.task(name="hangs")
    async def hangs() -> None:
        await asyncio.Event().wait()

    await tasks.start()
    task_id = await tasks.enqueue(hangs)
    async with asyncio.timeout(10):
        await running(client, prefix, task_id)
        await tasks.stop()
    async with RedisTasks(redis_url, prefix=prefix, consume=False) as reader:
        info = await reader.status(task_id)
    assert info is not None and (info.state, info.attempts) == (TaskState.QUEUED, 0)
    assert await client.xlen(f"{prefix}:stream") == 1  # back in the stream, for any worker


# -- a start that answers while the success is recorded, or after -------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param("run", marks=pytest.mark.transitions("committing:start_run")),
        pytest.param("skip", marks=pytest.mark.transitions("committing:start_skip")),
        pytest.param("gone", marks=pytest.mark.transitions("committing:start_gone")),
        pytest.param("failed", marks=pytest.mark.transitions("committing:start_failed")),
    ],
)
async def test_a_start_that_answers_while_the_success_is_recorded_leaves_it_to_the_finish(
    redis_url: str, prefix: str, client: aioredis.Redis, caplog: pytest.LogCaptureFixture,
    answer: str,
) -> None:  # fmt: skip
    tasks = RedisTasks(redis_url, prefix=prefix, visibility_timeout=30)
    sent, release, answered, finished = (asyncio.Event() for _ in range(4))
    applied: list[int] = []

    @tasks.task(name="quick")
    async def quick() -> str:
        await sent.wait()  # (a run that succeeds before its start is sent needs none)
        return "done"  # before its start answers: the finish is sent at once

    def start_held(real: Script) -> Script:
        async def start(**kwargs: Any) -> Any:
            sent.set()
            await release.wait()
            try:
                if answer == "failed":
                    raise reset()
                return await real(**kwargs)
            finally:
                answered.set()

        return start

    def finish_after_the_start(real: Script) -> Script:
        async def finish(**kwargs: Any) -> Any:
            if answer == "skip":  # the record expired while the worker ran the task
                await client.delete(kwargs["keys"][0])
            elif answer == "gone":  # another worker took the entry over
                entry_id = kwargs["args"][1]
                await client.xclaim(f"{prefix}:stream", "workers", "other", 0, [entry_id])
            release.set()
            await answered.wait()  # the start's answer is taken before the finish goes out
            applied.append(reply := await real(**kwargs))
            finished.set()
            return reply

        return finish

    async with tasks:
        wrap(tasks, "start", start_held)
        wrap(tasks, "finish", finish_after_the_start)
        with caplog.at_level(logging.INFO, logger="joey.tasks"):
            task_id = await tasks.enqueue(quick)
            async with asyncio.timeout(10):
                await finished.wait()
        info = await tasks.status(task_id)
    # Nothing was cancelled: the run had ended (it used to be logged so for a late 'skip').
    assert not any("cancelled" in r.getMessage() for r in caplog.records)
    if answer in ("run", "failed"):  # the finish records the start the worker made or missed
        assert applied == [1]
        assert info is not None and (info.state, info.result, info.attempts) == (
            TaskState.SUCCEEDED, "done", 1
        )
    elif answer == "skip":
        assert (applied, info) == ([0], None)  # nothing brought the expired record back
    else:
        assert applied == [0] and await owner(client, prefix) == ["other"]
        assert info is not None and (info.state, info.attempts) == (TaskState.QUEUED, 0)


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param("run", marks=pytest.mark.transitions("done:start_run")),
        pytest.param("skip", marks=pytest.mark.transitions("done:start_skip")),
        pytest.param("gone", marks=pytest.mark.transitions("done:start_gone")),
        pytest.param("failed", marks=pytest.mark.transitions("done:start_failed")),
    ],
)
async def test_a_start_that_answers_after_the_run_ended_changes_nothing(
    redis_url: str, prefix: str, client: aioredis.Redis, caplog: pytest.LogCaptureFixture,
    answer: str,
) -> None:  # fmt: skip
    tasks = RedisTasks(redis_url, prefix=prefix, visibility_timeout=30)
    sent, release, applied, finished, answered = (asyncio.Event() for _ in range(5))

    @tasks.task(name="quick")
    async def quick() -> str:
        await sent.wait()  # (a run that succeeds before its start is sent needs none)
        return "done"

    def start_late(real: Script) -> Script:
        async def start(**kwargs: Any) -> Any:
            sent.set()
            try:
                if answer in ("run", "skip"):  # applied before the finish, answered after it
                    await release.wait()
                    reply = await real(**kwargs)
                    applied.set()
                    await finished.wait()
                    return reply
                await finished.wait()  # sent once the run has ended
                if answer == "failed":
                    raise reset()
                return await real(**kwargs)
            finally:
                answered.set()

        return start

    def finish(real: Script) -> Script:
        async def finish(**kwargs: Any) -> Any:
            if answer in ("run", "skip"):
                if answer == "skip":
                    await client.delete(kwargs["keys"][0])  # the record expired meanwhile
                release.set()
                await applied.wait()
            reply = await real(**kwargs)
            finished.set()  # the run ends as this returns, before the start's answer
            return reply

        return finish

    async with tasks:
        wrap(tasks, "start", start_late)
        wrap(tasks, "finish", finish)
        with caplog.at_level(logging.INFO, logger="joey.tasks"):
            task_id = await tasks.enqueue(quick)
            async with asyncio.timeout(10):
                await answered.wait()
        info = await tasks.status(task_id)
    assert not any("cancelled" in r.getMessage() for r in caplog.records)
    if answer == "skip":
        assert info is None
    else:
        assert info is not None and (info.state, info.result, info.attempts) == (
            TaskState.SUCCEEDED, "done", 1
        )
    assert await client.xlen(f"{prefix}:stream") == 0


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
    assert (info.state, info.result, info.attempts) == (TaskState.SUCCEEDED, "done", 1)
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
    assert (info.state, info.result, info.attempts) == (TaskState.SUCCEEDED, "done", 1)
    assert runs == [1]
    assert any("_consume_loop failed, restarting" in r.getMessage() for r in caplog.records)


# -- an event the table has no transition for -----------------------------------------------------


async def test_an_event_missing_from_the_table_is_logged_as_a_bug_and_the_task_is_not_lost(
    redis_url: str, prefix: str, client: aioredis.Redis, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    for state in (RunState.STARTING, RunState.RUNNING):  # a table that forgot a success
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
