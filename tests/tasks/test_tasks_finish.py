"""Less Redis work per task (issue #28): what Redis executes per task, counted on a real
redis-server, and the batched finish: one script for every finish ready at that moment, applied
entry by entry only while the entry is pending for this worker, and a no-op when replayed."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from joey._redis import from_url
from joey.tasks import Backoff, RedisTasks, TaskState
from tests.redis_server import RedisServer
from tests.tasks.test_tasks_run_redis import held_by_another_worker
from tests.tasks.test_tasks_start import owner

Calls = list[dict[str, Any]]

# What the test itself sends to look at the counts, not the queue's work.
_NOT_THE_QUEUE = {"info", "config|resetstat"}


async def executed(client: aioredis.Redis) -> int:
    """The commands Redis has executed since its counts were reset: those clients sent and
    those scripts ran (INFO commandstats counts both)."""
    stats = await client.info("commandstats")
    return sum(
        int(row["calls"]) for name, row in stats.items()
        if name.removeprefix("cmdstat_") not in _NOT_THE_QUEUE
    )  # fmt: skip


def recording(tasks: RedisTasks, calls: Calls) -> None:
    """Record every finish script the worker sends."""
    real = tasks._scripts["finish"]

    async def finish(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return await real(**kwargs)

    tasks._scripts["finish"] = finish


def entries_of(call: dict[str, Any]) -> list[bytes]:
    """The entry ids one finish script carried (12 values per entry after 7 of the batch)."""
    return [cast(bytes, arg) for arg in call["args"][7::12]]


@pytest.mark.parametrize("tasks_count", [200])
async def test_redis_executes_at_most_8_commands_per_task_on_a_steady_batch(
    own_redis: RedisServer, prefix: str, tasks_count: int
) -> None:
    # A backlog, then a worker that drains it: enqueue (the max_queue check, XADD, HSET),
    # a share of a read, and the finish (one HSET and EXPIRE per task; XPENDING, XACK and
    # XDEL per batch). Before issue #28: about 15 (a start per read batch, HINCRBYs, a finish
    # script per task).
    client = cast(aioredis.Redis, from_url(own_redis.url, socket_timeout=None))
    done: list[int] = []
    all_done = asyncio.Event()
    worker = RedisTasks(own_redis.url, prefix=prefix, max_concurrency=50)

    @worker.task(name="work")
    async def work(n: int) -> None:
        await asyncio.sleep(0.005)  # longer than a round trip: the old code sent each a start
        done.append(n)
        if len(done) == tasks_count:
            all_done.set()

    try:
        async with RedisTasks(own_redis.url, prefix=prefix, consume=False) as producer:
            await client.config_resetstat()
            for n in range(tasks_count):
                await producer.enqueue("work", n)
            async with worker:
                async with asyncio.timeout(30):
                    await all_done.wait()
                    while worker._inflight:  # noqa: ASYNC110 - the last finishes
                        await asyncio.sleep(0.005)
            per_task = await executed(client) / tasks_count
    finally:
        await client.aclose()
    assert sorted(done) == list(range(tasks_count))
    assert per_task <= 8, f"{per_task:.2f} commands executed per task"


@pytest.mark.transitions("running:taken_over", "committing:refused", "committing:recorded")
async def test_one_batched_finish_records_the_entry_still_held_and_refuses_the_one_taken_over(
    redis_url: str, prefix: str, client: aioredis.Redis
) -> None:
    tasks = RedisTasks(redis_url, prefix=prefix, visibility_timeout=1.5)
    began: set[int] = set()
    release = asyncio.Event()
    calls: Calls = []

    @tasks.task(name="pair")
    async def pair(n: int) -> int:
        began.add(n)
        await release.wait()  # both end in the same turn: their finishes go together
        return n

    async with tasks:
        recording(tasks, calls)
        kept = await tasks.enqueue(pair, 1)
        taken = await tasks.enqueue(pair, 2)
        async with asyncio.timeout(10):
            while began != {1, 2}:  # noqa: ASYNC110 - the tasks run on this loop
                await asyncio.sleep(0.005)
            kept_entry, taken_entry = [
                cast(bytes, await client.hget(f"{prefix}:task:{task_id}", "entry"))
                for task_id in (kept, taken)
            ]
            async with held_by_another_worker(client, prefix, taken_entry):
                while taken_entry not in tasks._lost:  # noqa: ASYNC110 - a heartbeat noticed
                    await asyncio.sleep(0.01)
                release.set()
                while tasks._inflight:  # noqa: ASYNC110
                    await asyncio.sleep(0.005)
                still = await tasks.status(taken)
                assert await owner(client, prefix) == ["other"]
        ok = await tasks.status(kept)
    [call] = calls  # one script for both
    assert sorted(entries_of(call)) == sorted([kept_entry, taken_entry])
    assert ok is not None and (ok.state, ok.result, ok.attempts) == (TaskState.SUCCEEDED, 1, 1)
    # The one taken over: nothing recorded here; still the other worker's to run and record.
    assert still is not None and (still.state, still.attempts, still.result) == (
        TaskState.RUNNING, 1, None
    )
    assert await client.hget(f"{prefix}:task:{taken}", "state") == b"queued"


async def test_a_batched_finish_replayed_after_a_blip_changes_nothing(
    redis_url: str, prefix: str, client: aioredis.Redis
) -> None:
    # The connection drops after Redis applied the batch: the worker sends it again (and a
    # replay by hand, even claiming other outcomes, is refused): each task is recorded once,
    # the retry scheduled once, its failures counted once.
    tasks = RedisTasks(redis_url, prefix=prefix, visibility_timeout=30)
    began: set[int] = set()
    release = asyncio.Event()
    calls: Calls = []

    @tasks.task(name="three", retries=1, backoff=Backoff(base=60.0, jitter=0.0))
    async def three(n: int) -> int:
        began.add(n)
        await release.wait()
        if n == 3:
            raise ValueError("three fails")
        return n

    async with tasks:
        real = tasks._scripts["finish"]

        async def applied_then_dropped(**kwargs: Any) -> Any:
            calls.append(kwargs)
            reply = await real(**kwargs)
            if len(calls) == 1:
                raise RedisConnectionError("Connection reset by peer")
            return reply

        tasks._scripts["finish"] = applied_then_dropped
        ids = [await tasks.enqueue(three, n) for n in (1, 2, 3)]
        async with asyncio.timeout(10):
            while began != {1, 2, 3}:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
            release.set()
            while tasks._inflight:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
        records = [await client.hgetall(f"{prefix}:task:{task_id}") for task_id in ids]
        delayed = cast(
            list[tuple[bytes, float]],
            await client.zrange(f"{prefix}:delayed", 0, -1, withscores=True),
        )
        first = calls[0]
        assert len(entries_of(first)) == 3 and calls[1]["args"][7:] == first["args"][7:]
        assert await real(**first) == [0, 0, 0]  # the same batch again, by hand
        args = list(first["args"])
        for at in range(9, len(args), 12):
            args[at] = "dead"  # ... or other outcomes under the same tokens
        assert await real(keys=first["keys"], args=args) == [0, 0, 0]
        after = [await client.hgetall(f"{prefix}:task:{task_id}") for task_id in ids]
        assert await client.zrange(f"{prefix}:delayed", 0, -1, withscores=True) == delayed
        assert await tasks.dead_letters() == []
    assert len(calls) == 2  # the batch, and once more after the blip
    assert after == records
    assert [r[b"state"] for r in records] == [b"succeeded", b"succeeded", b"failed"]
    assert (records[2][b"failures"], records[2][b"attempts"]) == (b"1", b"1")
    assert [task_id.decode() for task_id, _ in delayed] == [ids[2]]
    assert await client.xlen(f"{prefix}:stream") == 0
    assert await owner(client, prefix) == []


@pytest.mark.parametrize("foreign", ["hash", "list"])
async def test_an_entry_whose_unique_key_holds_something_else_spoils_no_other_finish(
    redis_url: str, prefix: str, client: aioredis.Redis, caplog: pytest.LogCaptureFixture,
    foreign: str,
) -> None:  # fmt: skip
    # One entry's unique key was overwritten with another type (WRONGTYPE on its GET): Lua
    # rolls nothing back, so an error raised there used to leave the finishes before it applied
    # but un-acked (to run again), and fail every finish of the batch. Each finish stands
    # alone: all three are recorded and acked, the bad key is reported and left alone, and the
    # worker goes on.
    tasks = RedisTasks(redis_url, prefix=prefix, visibility_timeout=30)
    began: set[int] = set()
    release = asyncio.Event()
    calls: Calls = []

    @tasks.task(name="trio")
    async def trio(n: int) -> int:
        began.add(n)
        await release.wait()  # all end in the same turn: their finishes go together
        return n

    async with tasks:
        recording(tasks, calls)
        ids = [await tasks.options(unique=f"u{n}").enqueue(trio, n) for n in (1, 2, 3)]
        bad = tasks._unique_prefix + "u2"
        async with asyncio.timeout(10):
            while began != {1, 2, 3}:  # noqa: ASYNC110 - the tasks run on this loop
                await asyncio.sleep(0.005)
            await client.delete(bad)
            if foreign == "hash":
                await client.hset(bad, "someone", "else")
            else:
                await client.rpush(bad, "someone else")
            with caplog.at_level(logging.ERROR, logger="joey.tasks"):
                release.set()
                while tasks._inflight:  # noqa: ASYNC110
                    await asyncio.sleep(0.005)
            infos = [await tasks.status(task_id) for task_id in ids]
            assert await owner(client, prefix) == [] and await client.xlen(
                f"{prefix}:stream") == 0  # fmt: skip
            later = await tasks.wait(await tasks.enqueue(trio, 4))  # the worker goes on
    assert len(entries_of(calls[0])) == 3
    assert [(i.state, i.result) for i in infos if i is not None] == [
        (TaskState.SUCCEEDED, 1), (TaskState.SUCCEEDED, 2), (TaskState.SUCCEEDED, 3)
    ]  # fmt: skip
    assert (later.state, later.result) == (TaskState.SUCCEEDED, 4)
    assert await client.exists(tasks._unique_prefix + "u1", tasks._unique_prefix + "u3") == 0
    assert await client.type(bad) == foreign.encode()  # not Joey's: left alone
    [error] = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert f"task trio {ids[1]} (ok): recorded, but Redis refused part of it" in error
    assert "WRONGTYPE" in error
