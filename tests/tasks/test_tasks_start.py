"""How a Redis worker starts a run and who may record it (issue #17): a first delivery begins
before its start script answers, the start is made sure of before the result, the run token is
the entry's ownership in the consumer group, and entries of older versions still run."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, cast

import msgspec
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from joey.tasks import Backoff, RedisTasks, TaskState


async def owner(client: aioredis.Redis, prefix: str) -> list[str]:
    """The consumers the stream's pending entries belong to."""
    pending = await client.xpending_range(f"{prefix}:stream", "workers", "-", "+", 100)
    return [cast(bytes, item["consumer"]).decode() for item in pending]


@pytest.mark.transitions("read:delivered", "starting:succeeded", "committing:recorded")
async def test_a_first_delivery_runs_before_its_start_is_recorded_and_commits_once(
    redis_url: str, prefix: str
) -> None:
    tasks = RedisTasks(redis_url, prefix=prefix, visibility_timeout=30)
    order: list[str] = []
    seen: list[TaskState] = []
    gate = asyncio.Event()

    @tasks.task(name="early")
    async def early() -> str:
        order.append("began")
        info = await tasks.status(task_id)
        assert info is not None
        seen.append(info.state)
        gate.set()
        return "done"

    async with tasks:
        real = tasks._scripts["start"]

        async def slow_start(**kwargs: Any) -> Any:
            await gate.wait()  # the start answers only once the function has begun
            reply = await real(**kwargs)
            order.append("start recorded")
            return reply

        tasks._scripts["start"] = slow_start
        task_id = await tasks.enqueue(early)
        async with asyncio.timeout(10):
            info = await tasks.wait(task_id)
    assert order == ["began", "start recorded"]
    assert seen == [TaskState.QUEUED]  # for that first moment, status() still says QUEUED
    assert (info.state, info.result, info.attempts) == (TaskState.SUCCEEDED, "done", 1)
    assert info.started_at is not None


def flaky_start(tasks: RedisTasks, applied: list[bool]) -> None:
    """Make the next start scripts fail, one per item of `applied`: the connection drops
    before the script ran (False) or after it was applied (True)."""
    real = tasks._scripts["start"]
    failures = list(applied)

    async def flaky(**kwargs: Any) -> Any:
        if failures:
            if failures.pop(0):
                await real(**kwargs)
            raise RedisConnectionError("Connection reset by peer")
        return await real(**kwargs)

    tasks._scripts["start"] = flaky


def gate_start(tasks: RedisTasks, gate: asyncio.Event) -> None:
    """Hold every start script until `gate` is set."""
    real = tasks._scripts["start"]

    async def gated(**kwargs: Any) -> Any:
        await gate.wait()
        return await real(**kwargs)

    tasks._scripts["start"] = gated


@pytest.mark.parametrize("applied", [False, True], ids=["lost", "applied"])
async def test_a_start_that_fails_is_recorded_by_the_finish_and_counted_once(
    redis_url: str, prefix: str, caplog: pytest.LogCaptureFixture, applied: bool
) -> None:
    # visibility_timeout=30: a run that is not recorded now would only come back in 30 s.
    tasks = RedisTasks(redis_url, prefix=prefix, visibility_timeout=30)
    runs: list[int] = []

    @tasks.task(name="once")
    async def once() -> str:
        runs.append(1)
        await asyncio.sleep(0.1)  # long enough for its start to be sent (and fail)
        return "done"

    async with tasks:
        flaky_start(tasks, [applied])
        with caplog.at_level(logging.WARNING, logger="joey.tasks"):
            async with asyncio.timeout(10):
                info = await tasks.wait(await tasks.enqueue(once))
    assert (info.state, info.result, info.attempts) == (TaskState.SUCCEEDED, "done", 1)
    assert info.started_at is not None and info.started_at <= cast(float, info.finished_at)
    assert runs == [1]
    messages = [r.getMessage() for r in caplog.records]
    assert any("the start of 1 task(s) is not recorded yet" in m for m in messages)


@pytest.mark.transitions("starting:failed", "confirming:start_failed", "confirming:start_run")
async def test_a_failed_run_makes_sure_of_its_start_before_recording_the_failure(
    redis_url: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    tasks = RedisTasks(redis_url, prefix=prefix, visibility_timeout=30)
    runs: list[int] = []

    @tasks.task(name="flaky", retries=1, backoff=Backoff(base=0.0, jitter=0.0))
    async def flaky() -> str:
        runs.append(1)
        if len(runs) == 1:
            raise ValueError("first time")
        return "second time"

    async with tasks:
        # The start beside the run fails; sent again before the failure is recorded, it
        # fails once after it was applied, then once more: the start counts one attempt.
        flaky_start(tasks, [False, True, False])
        with caplog.at_level(logging.WARNING, logger="joey.tasks"):
            async with asyncio.timeout(10):
                info = await tasks.wait(await tasks.enqueue(flaky))
    assert (info.state, info.result, info.attempts) == (TaskState.SUCCEEDED, "second time", 2)
    assert runs == [1, 1]
    messages = [r.getMessage() for r in caplog.records]
    # The failure waited for its start: sent again by the run itself (and, in the
    # background, by the worker), three failures in all before one got through.
    assert any("(failed): its start: Redis unreachable" in m for m in messages)
    assert any("failed (attempt 1 of 2)" in m for m in messages)


async def test_a_task_a_worker_has_read_is_not_replaced_even_before_its_start_is_recorded(
    redis_url: str, prefix: str, client: aioredis.Redis
) -> None:
    # A first delivery runs before its start says RUNNING: a unique enqueue with
    # replace=True in that moment must see the task as started (its entry is pending in the
    # group), not cancel it while it runs and then report it cancelled after it completed.
    tasks = RedisTasks(redis_url, prefix=prefix, visibility_timeout=30)
    began: list[int] = []
    gate = asyncio.Event()

    @tasks.task(name="reindex")
    async def reindex(n: int) -> int:
        began.append(n)
        if n == 1:
            await gate.wait()
        return n

    async with tasks:
        gate_start(tasks, gate)
        first = await tasks.options(unique="index").enqueue(reindex, 1)
        async with asyncio.timeout(10):
            while not began:  # noqa: ASYNC110 - the task runs on this loop
                await asyncio.sleep(0.005)
            assert await client.hget(f"{prefix}:task:{first}", "state") == b"queued"
            second = await tasks.options(unique="index", replace=True).enqueue(reindex, 2)
            assert second != first
            gate.set()
            done = [await tasks.wait(first), await tasks.wait(second)]
    assert [(i.state, i.result) for i in done] == [(TaskState.SUCCEEDED, 1),
                                                   (TaskState.SUCCEEDED, 2)]
    assert sorted(began) == [1, 2]
    assert await owner(client, prefix) == []


@pytest.mark.transitions("starting:start_skip", "done:cancelled")
async def test_a_start_that_finds_the_task_gone_cancels_the_run_and_records_nothing(
    redis_url: str, prefix: str, client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    # The function began on the read; by the time its start reached Redis the task's record
    # was gone (expired, or removed by hand): nothing to run for, nothing to record.
    tasks = RedisTasks(redis_url, prefix=prefix, visibility_timeout=30)
    began = asyncio.Event()
    cancelled: list[int] = []
    gate = asyncio.Event()

    @tasks.task(name="orphan")
    async def orphan() -> None:
        began.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(1)
            raise

    async with tasks:
        gate_start(tasks, gate)
        with caplog.at_level(logging.INFO, logger="joey.tasks"):
            task_id = await tasks.enqueue(orphan)
            async with asyncio.timeout(10):
                await began.wait()
                await client.delete(f"{prefix}:task:{task_id}")
                gate.set()
                while not cancelled:  # noqa: ASYNC110
                    await asyncio.sleep(0.005)
                while tasks._inflight:  # noqa: ASYNC110
                    await asyncio.sleep(0.005)
    assert cancelled == [1]
    assert await client.exists(f"{prefix}:task:{task_id}") == 0  # nothing recorded
    assert await owner(client, prefix) == []  # the entry was acked, not handed back
    assert any(
        f"task orphan {task_id}: cancelled, it was final already" in r.getMessage()
        for r in caplog.records
    )


@pytest.mark.transitions("starting:start_failed", "starting:start_run", "running:succeeded")
async def test_a_start_lost_in_an_outage_is_sent_again_while_the_task_runs(
    redis_url: str, prefix: str, client: aioredis.Redis
) -> None:
    # Without a second try the task would read QUEUED (attempts 0, no worker) for its whole
    # run, and a worker death meanwhile would not count towards max_deliveries.
    tasks = RedisTasks(redis_url, prefix=prefix, visibility_timeout=30)
    release = asyncio.Event()

    @tasks.task(name="long")
    async def long() -> str:
        await release.wait()
        return "done"

    async with tasks:
        flaky_start(tasks, [False])
        task_id = await tasks.enqueue(long)
        async with asyncio.timeout(10):
            while await client.hget(f"{prefix}:task:{task_id}", "state") != b"running":  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            running = await tasks.status(task_id)
            release.set()
            info = await tasks.wait(task_id)
    assert running is not None and (running.state, running.attempts) == (TaskState.RUNNING, 1)
    assert running.started_at is not None
    assert (info.state, info.result, info.attempts) == (TaskState.SUCCEEDED, "done", 1)


async def test_a_start_refused_by_redis_is_logged_sent_again_and_the_run_recorded(
    redis_url: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Not an outage: Redis answered with an error (out of memory, a read-only replica).
    tasks = RedisTasks(redis_url, prefix=prefix, visibility_timeout=30)
    release = asyncio.Event()

    @tasks.task(name="refused")
    async def refused() -> str:
        await release.wait()
        return "done"

    async with tasks:
        real = tasks._scripts["start"]
        calls: list[int] = []

        async def oom_once(**kwargs: Any) -> Any:
            calls.append(1)
            if len(calls) == 1:
                raise ResponseError("OOM command not allowed when used memory > 'maxmemory'.")
            return await real(**kwargs)

        tasks._scripts["start"] = oom_once
        with caplog.at_level(logging.WARNING, logger="joey.tasks"):
            task_id = await tasks.enqueue(refused)
            async with asyncio.timeout(10):
                while len(calls) < 2:  # noqa: ASYNC110 - sent again while it runs
                    await asyncio.sleep(0.01)
                release.set()
                info = await tasks.wait(task_id)
    assert (info.state, info.result, info.attempts) == (TaskState.SUCCEEDED, "done", 1)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage().split(" (")[0] for r in errors] == [
        "task backend: the start of 1 task(s) is not recorded yet"
    ]


async def test_a_sender_that_finishes_leaves_no_trace_a_read_in_the_same_turn_could_trip_on(
    redis_url: str, prefix: str
) -> None:
    # One start script is in flight at a time: a read queues its runs' starts and starts a
    # sender only if none is running. A sender that had returned but was still listed (its
    # removal waited for a done callback, one loop turn later) made a read answered in that
    # turn queue starts that no sender would ever send; a failing run then waited forever.
    tasks = RedisTasks(redis_url, prefix=prefix, visibility_timeout=30)
    seen: list[list[bool]] = []

    @tasks.task(name="quick")
    async def quick() -> None:
        await asyncio.sleep(0.05)  # running still when its start is sent

    async with tasks:
        real = tasks._send_start

        async def watched(runs: Any) -> bool:
            sent = await real(runs)
            # Runs before the sender's done callbacks: what a read in this turn would see.
            asyncio.get_running_loop().call_soon(
                lambda: seen.append([s.done() for s in tasks._starting])
            )
            return sent

        tasks._send_start = watched  # type: ignore[method-assign]
        async with asyncio.timeout(10):
            await tasks.wait(await tasks.enqueue(quick))
            while not seen:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
    assert seen and all(done == [] for done in seen)


@pytest.mark.transitions("running:taken_over", "committing:refused")
async def test_the_finish_of_a_worker_whose_entry_was_taken_over_is_a_no_op(
    redis_url: str, prefix: str, client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    # Heartbeats every second; this worker's own XAUTOCLAIM would take the entry back from
    # "other" (which never beats) once idle for 3 s: everything below happens before that.
    tasks = RedisTasks(redis_url, prefix=prefix, visibility_timeout=3)
    release = asyncio.Event()
    began = asyncio.Event()

    @tasks.task(name="slow")
    async def slow() -> str:
        began.set()
        await release.wait()
        return "late"

    async with tasks:
        task_id = await tasks.enqueue(slow)
        async with asyncio.timeout(10):
            await began.wait()
            for _ in range(500):  # the start is recorded in Redis, beside the run
                if await client.hget(f"{prefix}:task:{task_id}", "state") == b"running":
                    break
                await asyncio.sleep(0.01)
            # Another worker takes the entry over, as its XAUTOCLAIM would after this worker
            # missed its heartbeats.
            [(entry_id, _)] = cast(list[Any], await client.xrange(f"{prefix}:stream"))
            await client.xclaim(f"{prefix}:stream", "workers", "other", 0, [entry_id])
            with caplog.at_level(logging.WARNING, logger="joey.tasks"):
                # The next heartbeat finds the entry taken over: it warns, and must not claim
                # it back. (Waited for, not slept: a fixed sleep raced the XAUTOCLAIM above.)
                for _ in range(500):
                    if any("was taken over" in r.getMessage() for r in caplog.records):
                        break
                    await asyncio.sleep(0.01)
                assert await owner(client, prefix) == ["other"]
                release.set()
                while tasks._inflight:  # noqa: ASYNC110 - the run commits on this loop
                    await asyncio.sleep(0.01)
            info = await tasks.status(task_id)
            assert await owner(client, prefix) == ["other"]  # still the new owner's to finish
    assert info is not None and info.state is TaskState.RUNNING and info.result is None
    assert any(
        f"task slow {task_id} was taken over by another worker" in r.getMessage()
        for r in caplog.records
    )


async def test_a_replayed_finish_is_a_no_op(redis_url: str, prefix: str) -> None:
    tasks = RedisTasks(redis_url, prefix=prefix)
    calls: list[dict[str, Any]] = []
    replies: list[int] = []

    @tasks.task(name="once")
    async def once() -> str:
        return "done"

    async with tasks:
        real = tasks._scripts["finish"]

        async def recording(**kwargs: Any) -> Any:
            calls.append(kwargs)
            replies.append(reply := await real(**kwargs))
            return reply

        tasks._scripts["finish"] = recording
        async with asyncio.timeout(10):
            task_id = await tasks.enqueue(once)
            info = await tasks.wait(task_id)
            while not replies:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
        [call] = calls
        assert await real(**call) == 0  # the same commit again, after the first was applied
        args = list(call["args"])
        args[3] = "dead"  # ... or a different outcome under the same token
        assert await real(keys=call["keys"], args=args) == 0
        after = await tasks.status(task_id)
        assert await tasks.dead_letters() == []
    assert replies == [1]
    assert info.state is TaskState.SUCCEEDED
    assert after is not None and (after.state, after.result) == (TaskState.SUCCEEDED, "done")


async def write_old_style(
    client: aioredis.Redis, prefix: str, task_id: str, name: str, *args: Any
) -> None:
    """A task as the previous version enqueued it: its hash, and a stream entry with the id
    only (no name, payload or options)."""
    encode = msgspec.msgpack.encode
    await client.hset(
        f"{prefix}:task:{task_id}",
        mapping={"name": name, "payload": encode((list(args), {})), "options": encode([]),
                 "state": "queued", "attempts": 0, "failures": 0, "deliveries": 0,
                 "max_attempts": 1, "enqueued_at": repr(time.time()), "run_at": ""},
    )  # fmt: skip
    await client.xadd(f"{prefix}:stream", {"id": task_id})


@pytest.mark.transitions("read:reclaimed", "waiting:start_run")
async def test_entries_written_by_the_previous_version_run(
    redis_url: str, prefix: str, client: aioredis.Redis
) -> None:
    await client.xgroup_create(f"{prefix}:stream", "workers", id="0", mkstream=True)
    await write_old_style(client, prefix, "old-1", "add", 2, 3)
    await write_old_style(client, prefix, "old-2", "gone.away", 1)
    await write_old_style(client, prefix, "old-3", "add", 10, 20)
    # A worker of the previous version read those three and was killed: they are reclaimed.
    # The fourth is delivered for the first time.
    await client.xreadgroup("workers", "killed-old-worker", {f"{prefix}:stream": ">"}, count=3)
    await write_old_style(client, prefix, "old-4", "add", 1, 1)
    tasks = RedisTasks(redis_url, prefix=prefix, visibility_timeout=0.3)

    @tasks.task(name="add")
    async def add(a: int, b: int) -> int:
        return a + b

    async with tasks:
        async with asyncio.timeout(10):
            infos = [await tasks.wait(f"old-{i}") for i in range(1, 5)]
    assert [(i.state, i.result, i.attempts) for i in infos] == [
        (TaskState.SUCCEEDED, 5, 1),
        (TaskState.DEAD, None, 1),
        (TaskState.SUCCEEDED, 30, 1),
        (TaskState.SUCCEEDED, 2, 1),
    ]
    assert infos[1].error == (
        "TaskNotRegistered: no task named 'gone.away' in worker " + tasks.consumer
    )
    assert await client.xlen(f"{prefix}:stream") == 0


async def test_entries_joey_did_not_write_are_dead_lettered_with_the_reason(
    redis_url: str, prefix: str, client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    # Something else shares the stream (another app on the same prefix, a hand-made XADD).
    # Such entries used to be skipped and never acked: a crash loop for a non-text id, and
    # for the others a reclaim every visibility_timeout until shutdown.
    stream = f"{prefix}:stream"
    await client.xgroup_create(stream, "workers", id="0", mkstream=True)
    # One read by a worker that was killed: it is reclaimed, past visibility_timeout.
    held = await client.xadd(stream, {"hello": "world"})
    await client.xreadgroup("workers", "killed-worker", {stream: ">"}, count=1)
    tasks = RedisTasks(redis_url, prefix=prefix, visibility_timeout=0.5)

    @tasks.task(name="add")
    async def add(a: int, b: int) -> int:
        return a + b

    with caplog.at_level(logging.ERROR, logger="joey.tasks"):
        async with tasks:
            no_id = await client.xadd(stream, {"foo": "bar"})
            bad_id = await client.xadd(stream, {"id": b"\xff\xfe", "name": "report"})
            async with asyncio.timeout(10):
                after = await tasks.wait(await tasks.enqueue(add, 1, 2))  # the worker goes on
                for _ in range(200):  # polling Redis, bounded by the timeout too
                    if len(dead := await tasks.dead_letters()) == 3:
                        break
                    await asyncio.sleep(0.05)
            overview = await tasks.overview()
            assert await tasks.drop(dead[0].id)
            assert len(await tasks.dead_letters()) == 2
    assert after.state is TaskState.SUCCEEDED and after.result == 3
    by_entry = {info.error.split()[3] if info.error else "": info for info in dead}
    assert set(by_entry) == {held.decode(), no_id.decode(), bad_id.decode()}
    for entry, name, reason, fields in [
        (held, "?", "it holds no task id", "b'hello': b'world'"),
        (no_id, "?", "it holds no task id", "b'foo': b'bar'"),
        (bad_id, "report", "its task id or name is not UTF-8 text",
         "b'id': b'\\xff\\xfe', b'name': b'report'"),
    ]:  # fmt: skip
        info = by_entry[entry.decode()]
        assert (info.state, info.name, info.attempts) == (TaskState.DEAD, name, 0)
        assert info.error == (
            f"ForeignEntry: stream entry {entry.decode()} was not written by Joey ({reason}) "
            f"and was not run; its fields: {fields}"
        )
    assert overview == {
        "?": {"queued": 0, "running": 0, "scheduled": 0, "dead": 2},
        "report": {"queued": 0, "running": 0, "scheduled": 0, "dead": 1},
    }
    # Taken off the stream and out of the group's pending list: never delivered again.
    assert await client.xlen(stream) == 0
    assert (await client.xpending(stream, "workers"))["pending"] == 0
    errors = [r.getMessage() for r in caplog.records]
    assert len(errors) == 3 and all("is dead: ForeignEntry" in line for line in errors), errors


async def test_an_entry_joey_did_not_write_pending_at_stop_is_dead_lettered_too(
    redis_url: str, prefix: str, client: aioredis.Redis
) -> None:
    stream = f"{prefix}:stream"
    tasks = RedisTasks(redis_url, prefix=prefix, visibility_timeout=30)
    await tasks.start()
    # Pending for this worker, but never handed to its loop: what a read that stop() cut
    # short leaves. (One transaction, so the worker's own blocking read cannot take it.)
    async with client.pipeline(transaction=True) as pipe:
        pipe.xadd(stream, {"foo": "bar"})
        pipe.xreadgroup("workers", tasks.consumer, {stream: ">"}, count=1)
        entry_id, _ = await pipe.execute()
    await tasks.stop()
    # Dead-lettered, not merely acked (which left it in the stream for good, unread).
    assert await client.xlen(stream) == 0
    [task_id] = await client.lrange(f"{prefix}:dead", 0, -1)
    error = await client.hget(f"{prefix}:task:{task_id.decode()}", "error")
    assert error is not None
    assert error.decode().startswith(f"ForeignEntry: stream entry {entry_id.decode()} was not")


async def test_the_overview_counts_an_entry_whose_name_is_not_text(
    redis_url: str, prefix: str, client: aioredis.Redis
) -> None:
    tasks = RedisTasks(redis_url, prefix=prefix, consume=False)
    async with tasks:
        await client.xadd(f"{prefix}:stream", {"id": "x", "name": b"\xffname"})
        assert await tasks.overview() == {
            "\ufffdname": {"queued": 1, "running": 0, "scheduled": 0, "dead": 0}
        }


@pytest.mark.transitions("confirming:gave_up")
@pytest.mark.parametrize("name", ["fails", "not.registered"])
async def test_a_failure_whose_start_cannot_be_recorded_records_nothing(
    redis_url: str, prefix: str, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    # Redis stays unreachable for the start past commit_timeout: the failure is not recorded
    # (the task is not counted failed, nor dead-lettered); it runs again once taken over.
    tasks = RedisTasks(redis_url, prefix=prefix, visibility_timeout=30, commit_timeout=0.3)

    @tasks.task(name="fails")
    async def fails() -> None:
        raise ValueError("no")

    async with tasks:
        flaky_start(tasks, [False] * 1000)
        with caplog.at_level(logging.ERROR, logger="joey.tasks"):
            task_id = await tasks.enqueue(name)
            async with asyncio.timeout(10):
                for _ in range(500):  # the worker logs on this loop
                    if any("not recorded" in r.getMessage() for r in caplog.records):
                        break
                    await asyncio.sleep(0.02)
            info = await tasks.status(task_id)
            assert await tasks.dead_letters() == []
    assert info is not None and (info.state, info.attempts) == (TaskState.QUEUED, 0)
    assert any(
        f"task {name} {task_id} (" in r.getMessage()
        and "its start: not recorded, Redis unreachable for commit_timeout=0.3s" in r.getMessage()
        for r in caplog.records
    )


async def test_a_worker_that_missed_its_own_heartbeats_does_not_run_its_task_twice(
    redis_url: str, prefix: str
) -> None:
    # Its own XAUTOCLAIM takes its entry back once idle past visibility_timeout: the run
    # already going on here goes on, alone, and records its result.
    tasks = RedisTasks(redis_url, prefix=prefix, visibility_timeout=0.3)
    runs: list[int] = []

    @tasks.task(name="slow")
    async def slow() -> str:
        runs.append(1)
        await asyncio.sleep(1.0)
        return "once"

    async with tasks:

        async def no_heartbeat(**kwargs: Any) -> list[bytes]:
            return []

        tasks._scripts["heartbeat"] = no_heartbeat
        async with asyncio.timeout(10):
            info = await tasks.wait(await tasks.enqueue(slow))
    assert (info.state, info.result, info.attempts) == (TaskState.SUCCEEDED, "once", 1)
    assert runs == [1]


@pytest.mark.transitions("starting:cancelled")
async def test_stop_with_a_start_in_flight_hands_the_task_back(redis_url: str, prefix: str) -> None:
    tasks = RedisTasks(redis_url, prefix=prefix, shutdown_timeout=0.1, redis_timeout=0.3)
    began = asyncio.Event()

    @tasks.task(name="hangs")
    async def hangs() -> None:
        began.set()
        await asyncio.Event().wait()

    await tasks.start()
    real = tasks._scripts["start"]

    async def never(**kwargs: Any) -> Any:
        await asyncio.Event().wait()
        return await real(**kwargs)  # pragma: no cover - never answers

    tasks._scripts["start"] = never
    task_id = await tasks.enqueue(hangs)
    async with asyncio.timeout(10):
        await began.wait()
        await tasks.stop()
    async with RedisTasks(redis_url, prefix=prefix, consume=False) as reader:
        info = await reader.status(task_id)
    assert info is not None and (info.state, info.attempts) == (TaskState.QUEUED, 0)


async def test_a_start_sent_again_after_the_worker_reclaimed_its_own_entry_counts_once(
    redis_url: str, prefix: str, client: aioredis.Redis
) -> None:
    # The start was applied but its reply lost; meanwhile the worker's own XAUTOCLAIM took
    # the entry again (its event loop stalled past visibility_timeout), which bumps the
    # entry's delivery count. The start sent again is the same run's: no second attempt.
    tasks = RedisTasks(redis_url, prefix=prefix, visibility_timeout=30)
    began, bumped, release = asyncio.Event(), asyncio.Event(), asyncio.Event()
    calls: list[int] = []

    @tasks.task(name="stalled")
    async def stalled() -> str:
        began.set()
        await release.wait()
        return "done"

    async with tasks:
        real = tasks._scripts["start"]

        async def lost_reply_then_wait(**kwargs: Any) -> Any:
            calls.append(1)
            if len(calls) == 1:
                await real(**kwargs)
                raise RedisConnectionError("Connection reset by peer")
            await bumped.wait()
            return await real(**kwargs)

        tasks._scripts["start"] = lost_reply_then_wait
        task_id = await tasks.enqueue(stalled)
        key = f"{prefix}:task:{task_id}"
        async with asyncio.timeout(10):
            await began.wait()
            while await client.hget(key, "state") != b"running":  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            [(entry_id, _)] = cast(list[Any], await client.xrange(f"{prefix}:stream"))
            await client.xclaim(f"{prefix}:stream", "workers", tasks.consumer, 0, [entry_id])
            bumped.set()
            while len(calls) < 2:  # noqa: ASYNC110 - the start is sent again
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)
            assert await client.hget(key, "attempts") == b"1"
            release.set()
            info = await tasks.wait(task_id)
    assert (info.state, info.result, info.attempts) == (TaskState.SUCCEEDED, "done", 1)
