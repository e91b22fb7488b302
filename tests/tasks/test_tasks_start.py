"""How a Redis worker starts a run and who may record it (issues #17 and #28): a first delivery
runs with no start sent (its finish records it; `status()` reads it RUNNING from the group's
pending list), the run token is the entry's ownership in the consumer group, and entries of
older versions still run."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, cast

import msgspec
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from joey.tasks import Backoff, RedisTasks, TaskState


async def owner(client: aioredis.Redis, prefix: str) -> list[str]:
    """The consumers the stream's pending entries belong to."""
    pending = await client.xpending_range(f"{prefix}:stream", "workers", "-", "+", 100)
    return [cast(bytes, item["consumer"]).decode() for item in pending]


def never_started(tasks: RedisTasks) -> list[Any]:
    """Make the start script record its calls (a first delivery must make none)."""
    calls: list[Any] = []
    real = tasks._scripts["start"]

    async def start(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return await real(**kwargs)

    tasks._scripts["start"] = start
    return calls


@pytest.mark.transitions("read:delivered", "running:succeeded", "committing:recorded")
async def test_a_first_delivery_sends_no_start_and_reads_running_until_its_finish_records_it(
    redis_url: str, prefix: str, client: aioredis.Redis
) -> None:
    tasks = RedisTasks(redis_url, prefix=prefix, visibility_timeout=30)
    seen: list[Any] = []
    release = asyncio.Event()

    @tasks.task(name="early")
    async def early() -> str:
        seen.append(await client.hget(f"{prefix}:task:{task_id}", "state"))
        seen.append(await tasks.status(task_id))
        await release.wait()
        return "done"

    async with tasks:
        starts = never_started(tasks)
        before = time.time()
        task_id = await tasks.enqueue(early)
        async with asyncio.timeout(10):
            while len(seen) < 2:  # noqa: ASYNC110 - the task runs on this loop
                await asyncio.sleep(0.005)
            release.set()
            info = await tasks.wait(task_id)
    record, running = seen
    assert record == b"queued"  # nothing recorded its start...
    # ... yet status() reads it running: its entry is pending for a worker
    assert running is not None and (running.state, running.attempts) == (TaskState.RUNNING, 1)
    assert running.started_at is not None and before - 0.05 <= running.started_at <= time.time()
    assert starts == []
    assert (info.state, info.result, info.attempts) == (TaskState.SUCCEEDED, "done", 1)
    assert info.started_at is not None and info.started_at <= cast(float, info.finished_at)
    assert await owner(client, prefix) == []
    assert await client.xlen(f"{prefix}:stream") == 0


@pytest.mark.transitions("running:failed")
async def test_failures_are_counted_across_retries_without_a_start(
    redis_url: str, prefix: str, client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    # The failures so far travel with the entry (the retry's entry is written from the
    # record), so a first delivery that fails knows whether it was its last attempt.
    tasks = RedisTasks(redis_url, prefix=prefix, visibility_timeout=30)
    runs: list[int] = []

    @tasks.task(name="flaky", retries=2, backoff=Backoff(base=0.0, jitter=0.0))
    async def flaky() -> str:
        runs.append(1)
        if len(runs) < 3:
            raise ValueError(f"time {len(runs)}")
        return "third time"

    @tasks.task(name="hopeless", retries=1, backoff=Backoff(base=0.0, jitter=0.0))
    async def hopeless() -> None:
        raise ValueError("never")

    async with tasks:
        starts = never_started(tasks)
        with caplog.at_level(logging.WARNING, logger="joey.tasks"):
            async with asyncio.timeout(10):
                info = await tasks.wait(await tasks.enqueue(flaky))
                dead = await tasks.wait(await tasks.enqueue(hopeless))
    assert (info.state, info.result, info.attempts) == (TaskState.SUCCEEDED, "third time", 3)
    assert await client.hget(f"{prefix}:task:{info.id}", "failures") == b"2"
    assert (dead.state, dead.attempts, dead.error) == (TaskState.DEAD, 2, "ValueError: never")
    assert await client.hget(f"{prefix}:task:{dead.id}", "failures") == b"2"
    assert starts == []
    messages = [r.getMessage() for r in caplog.records]
    assert any("flaky" in m and "failed (attempt 1 of 3)" in m for m in messages)
    assert any("flaky" in m and "failed (attempt 2 of 3)" in m for m in messages)
    assert any("hopeless" in m and "is dead after 2 attempt(s)" in m for m in messages)


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


async def test_a_first_delivery_whose_record_is_gone_records_nothing(
    redis_url: str, prefix: str, client: aioredis.Redis
) -> None:
    # The record was deleted (by hand, or evicted) while the task ran: its finish must not
    # bring back a record of a few fields, and the entry is acked, not left pending.
    tasks = RedisTasks(redis_url, prefix=prefix, visibility_timeout=30)
    began, release = asyncio.Event(), asyncio.Event()

    @tasks.task(name="orphan")
    async def orphan() -> str:
        began.set()
        await release.wait()
        return "done"

    async with tasks:
        task_id = await tasks.enqueue(orphan)
        async with asyncio.timeout(10):
            await began.wait()
            await client.delete(f"{prefix}:task:{task_id}")
            release.set()
            while tasks._inflight:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
        assert await tasks.status(task_id) is None
    assert await client.exists(f"{prefix}:task:{task_id}") == 0  # nothing recorded
    assert await owner(client, prefix) == []  # the entry was acked
    assert await client.xlen(f"{prefix}:stream") == 0


async def test_a_sender_that_finishes_leaves_no_trace_a_run_in_the_same_turn_could_trip_on(
    redis_url: str, prefix: str
) -> None:
    # One finish script is in flight at a time: a run queues its finish and starts a sender
    # only if none is running. A sender that had returned but was still listed (its removal
    # waited for a done callback, one loop turn later) made a finish queued in that turn wait
    # for a sender that would never come.
    tasks = RedisTasks(redis_url, prefix=prefix, visibility_timeout=30)
    seen: list[list[bool]] = []

    @tasks.task(name="quick")
    async def quick() -> None: ...

    async with tasks:
        real = tasks._send_finishes

        async def watched() -> None:
            await real()
            # Runs before the sender's done callbacks: what a run in this turn would see.
            asyncio.get_running_loop().call_soon(
                lambda: seen.append([s.done() for s in tasks._finishing])
            )

        tasks._send_finishes = watched  # type: ignore[method-assign]
        async with asyncio.timeout(10):
            for _ in range(3):
                await tasks.wait(await tasks.enqueue(quick))
            while len(seen) < 3:  # noqa: ASYNC110
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
            await began.wait()  # (a first delivery: its entry is pending here as it runs)
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
    replies: list[list[int]] = []

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
        assert await real(**call) == [0]  # the same commit again, after the first was applied
        args = list(call["args"])
        args[9] = "dead"  # ... or a different outcome under the same token
        assert await real(keys=call["keys"], args=args) == [0]
        after = await tasks.status(task_id)
        assert await tasks.dead_letters() == []
    assert replies == [[1]]
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


@pytest.mark.transitions("committing:gave_up")
@pytest.mark.parametrize("name", ["fails", "not.registered"])
async def test_a_failure_whose_finish_cannot_be_recorded_records_nothing(
    redis_url: str, prefix: str, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    # Redis stays unreachable for the finish past commit_timeout: the failure is not recorded
    # (nor dead-lettered); the entry stays pending and runs again once taken over.
    tasks = RedisTasks(redis_url, prefix=prefix, visibility_timeout=30, commit_timeout=0.3)

    @tasks.task(name="fails")
    async def fails() -> None:
        raise ValueError("no")

    async with tasks:

        async def unreachable(**kwargs: Any) -> Any:
            raise RedisConnectionError("Connection reset by peer")

        tasks._scripts["finish"] = unreachable
        with caplog.at_level(logging.ERROR, logger="joey.tasks"):
            task_id = await tasks.enqueue(name)
            async with asyncio.timeout(10):
                for _ in range(500):  # the worker logs on this loop
                    if any("not recorded" in r.getMessage() for r in caplog.records):
                        break
                    await asyncio.sleep(0.02)
            info = await tasks.status(task_id)
            assert await tasks.dead_letters() == []
    # (still pending here: read as running, until another worker takes it over)
    assert info is not None and (info.state, info.attempts) == (TaskState.RUNNING, 1)
    assert info.error is None
    assert any(
        f"task {name} {task_id} (dead): not recorded, Redis unreachable for commit_timeout=0.3s"
        in r.getMessage() for r in caplog.records
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

        async def no_heartbeat(**kwargs: Any) -> list[list[bytes]]:
            return [[], []]  # nothing taken over, no start recorded

        tasks._scripts["heartbeat"] = no_heartbeat
        async with asyncio.timeout(10):
            info = await tasks.wait(await tasks.enqueue(slow))
    assert (info.state, info.result, info.attempts) == (TaskState.SUCCEEDED, "once", 1)
    assert runs == [1]


async def test_a_heartbeat_records_the_start_of_a_first_delivery_still_running_once(
    redis_url: str, prefix: str, client: aioredis.Redis
) -> None:
    # From then on status() reads the start from the record (a heartbeat's re-claim resets the
    # entry's idle time, which it read before). The worker's own XAUTOCLAIM took the entry
    # again meanwhile (its event loop stalled): still one run, one attempt, one delivery.
    tasks = RedisTasks(redis_url, prefix=prefix, visibility_timeout=0.6)
    began, release = asyncio.Event(), asyncio.Event()

    @tasks.task(name="long")
    async def long() -> str:
        began.set()
        await release.wait()
        return "done"

    async with tasks:
        starts = never_started(tasks)
        before = time.time()
        task_id = await tasks.enqueue(long)
        key = f"{prefix}:task:{task_id}"
        async with asyncio.timeout(10):
            await began.wait()
            [(entry_id, _)] = cast(list[Any], await client.xrange(f"{prefix}:stream"))
            await client.xclaim(f"{prefix}:stream", "workers", tasks.consumer, 0, [entry_id])
            while await client.hget(key, "state") != b"running":  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.5)  # more heartbeats: the start is recorded once
            record = await client.hmget(key, "attempts", "deliveries", "worker")
            running = await tasks.status(task_id)
            release.set()
            info = await tasks.wait(task_id)
    assert record == [b"1", b"1", tasks.consumer.encode()]
    assert running is not None and (running.state, running.attempts) == (TaskState.RUNNING, 1)
    assert running.started_at is not None and before <= running.started_at < before + 0.3
    assert (info.state, info.result, info.attempts) == (TaskState.SUCCEEDED, "done", 1)
    assert info.started_at == running.started_at
    assert starts == []


# -- an entry that comes back to its worker after a takeover ---------------------------------


async def taken_by_other(
    tasks: RedisTasks, client: aioredis.Redis, prefix: str, task_id: str, *, other_starts: bool
) -> bytes:
    """Worker "other" takes the task's entry over, as its XAUTOCLAIM would after this worker
    missed heartbeats, and dies (after its start of the reclaimed entry was applied, with
    `other_starts`: attempts 2, deliveries 2). Its entry id."""
    stream = f"{prefix}:stream"
    [(entry_id, _)] = cast(list[Any], await client.xrange(stream))
    await client.xclaim(stream, "workers", "other", 0, [entry_id])
    if other_starts:  # mode 5: a reclaimed entry whose first delivery ran without a start
        await tasks._scripts["start"](
            keys=[stream, f"{prefix}:dead", f"{prefix}:task:{task_id}",
                  f"{prefix}:task:{task_id}"],
            args=[repr(time.time()), "other", tasks.max_deliveries, "workers", tasks.dead_ttl,
                  tasks.keep_dead, entry_id, task_id, 5],
        )  # fmt: skip
    return cast(bytes, entry_id)


@pytest.mark.transitions("running:taken_over", "running:taken_back", "committing:recorded")
@pytest.mark.parametrize("other_starts", [False, True], ids=["other-died-unstarted",
                                                              "other-started-then-died"])
async def test_a_run_whose_entry_comes_back_after_a_takeover_records_a_consistent_start(
    redis_url: str, prefix: str, client: aioredis.Redis, other_starts: bool
) -> None:
    # A first delivery running here is taken over by "other", which dies; this worker's
    # heartbeat notices the takeover (and must not count the start it carried as recorded),
    # then this worker's own XAUTOCLAIM takes the idle entry back while the run goes on here.
    # Its finish reads the record: a start time and worker, and never fewer attempts than
    # "other"'s start recorded (it used to write no start, or attempts going 2 -> 1).
    tasks = RedisTasks(redis_url, prefix=prefix, visibility_timeout=0.9)
    began, release = asyncio.Event(), asyncio.Event()

    @tasks.task(name="slow")
    async def slow() -> str:
        began.set()
        await release.wait()
        return "done"

    async with tasks:
        task_id = await tasks.enqueue(slow)
        async with asyncio.timeout(15):
            await began.wait()
            entry_id = await taken_by_other(
                tasks, client, prefix, task_id, other_starts=other_starts
            )
            while entry_id not in tasks._lost:  # noqa: ASYNC110 - a heartbeat noticed
                await asyncio.sleep(0.01)
            while await owner(client, prefix) != [tasks.consumer]:  # noqa: ASYNC110 - its own
                await asyncio.sleep(0.01)  # XAUTOCLAIM took it back
            before = await client.hgetall(f"{prefix}:task:{task_id}")
            release.set()
            info = await tasks.wait(task_id)
        record = await client.hgetall(f"{prefix}:task:{task_id}")
    assert info.state is TaskState.SUCCEEDED and info.result == "done"
    assert info.started_at is not None, f"no start recorded: {record!r}"
    assert record[b"worker"] == tasks.consumer.encode()
    assert int(before[b"attempts"]) == (2 if other_starts else 0)
    assert info.attempts == (2 if other_starts else 1), f"attempts: before {before!r}"


@pytest.mark.transitions("committing:taken_back", "committing:recorded")
async def test_a_finish_retried_after_its_entry_came_back_reads_the_record(
    redis_url: str, prefix: str, client: aioredis.Redis
) -> None:
    # No heartbeat reaches Redis (so none notices the takeover) and the finish meets a blip;
    # meanwhile "other" takes the entry over, records its start and dies, and this worker's own
    # XAUTOCLAIM takes the entry back: the next try of the finish reads the record.
    tasks = RedisTasks(redis_url, prefix=prefix, visibility_timeout=0.3)
    calls: list[dict[str, Any]] = []
    back = asyncio.Event()

    @tasks.task(name="quick")
    async def quick() -> str:
        return "done"

    async with tasks:
        real = tasks._scripts["finish"]

        async def no_heartbeat(**kwargs: Any) -> list[list[bytes]]:
            return [[], []]

        async def blip_until_back(**kwargs: Any) -> Any:
            calls.append(kwargs)
            if not back.is_set():
                raise RedisConnectionError("Connection reset by peer")
            return await real(**kwargs)

        tasks._scripts["heartbeat"] = no_heartbeat
        tasks._scripts["finish"] = blip_until_back
        task_id = await tasks.enqueue(quick)
        async with asyncio.timeout(15):
            while not calls:  # noqa: ASYNC110 - the run ended, its finish meets the blip
                await asyncio.sleep(0.005)
            await taken_by_other(tasks, client, prefix, task_id, other_starts=True)
            while await owner(client, prefix) != [tasks.consumer]:  # noqa: ASYNC110 - its own
                await asyncio.sleep(0.01)  # XAUTOCLAIM took it back
            back.set()
            info = await tasks.wait(task_id)
        record = await client.hgetall(f"{prefix}:task:{task_id}")
    assert calls[0]["args"][-1] == "0" and calls[-1]["args"][-1] == "1"  # `read`
    assert (info.state, info.result, info.attempts) == (TaskState.SUCCEEDED, "done", 2)
    assert record[b"worker"] == tasks.consumer.encode() and info.started_at is not None


@pytest.mark.parametrize("fails", [True, False], ids=["failed", "succeeded"])
async def test_a_run_whose_finish_gave_up_counts_when_stop_hands_it_back(
    redis_url: str, prefix: str, client: aioredis.Redis, caplog: pytest.LogCaptureFixture,
    fails: bool,
) -> None:  # fmt: skip
    # A first delivery ran (a failure, or a success) but Redis refused its finish past
    # commit_timeout; stop() hands the entry back: that run is counted (its attempt, and its
    # failure toward `retries`), as a takeover would count it, rather than re-queued as the
    # same attempt again.
    tasks = RedisTasks(redis_url, prefix=prefix, visibility_timeout=30, commit_timeout=0.3)

    @tasks.task(name="once", retries=3)
    async def once() -> None:
        if fails:
            raise ValueError("no")

    async with tasks:

        async def unreachable(**kwargs: Any) -> Any:
            raise RedisConnectionError("Connection reset by peer")

        tasks._scripts["finish"] = unreachable
        with caplog.at_level(logging.ERROR, logger="joey.tasks"):
            task_id = await tasks.enqueue(once)
            async with asyncio.timeout(10):
                for _ in range(500):  # the worker logs on this loop
                    if any("not recorded" in r.getMessage() for r in caplog.records):
                        break
                    await asyncio.sleep(0.02)
    record = await client.hmget(f"{prefix}:task:{task_id}", "state", "attempts", "failures")
    [(_, fields)] = cast(list[Any], await client.xrange(f"{prefix}:stream"))
    failures = b"1" if fails else b"0"
    assert record == [b"queued", b"1", failures]
    assert (fields[b"attempt"], fields[b"failures"]) == (b"2", failures)
