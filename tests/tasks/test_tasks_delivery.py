"""The delivery guarantee, proven with `joey worker` processes and real redis-servers:
kill -9 of a worker, a Redis restart mid-run, periodic ticks across workers."""

from __future__ import annotations

import asyncio
import collections
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from joey.tasks import RedisTasks, TaskState
from tests.redis_server import RedisServer
from tests.tasks.conftest import WorkerFactory, stop_gracefully
from tests.tasks.test_tasks_worker import pending_of, wait_started


@pytest.fixture
async def producer(redis_url: str, prefix: str) -> AsyncIterator[RedisTasks]:
    tasks = RedisTasks(redis_url, prefix=prefix, consume=False)
    async with tasks:
        yield tasks


async def consumers(client: aioredis.Redis, prefix: str) -> list[str]:
    return [c["name"].decode() for c in await client.xinfo_consumers(f"{prefix}:stream", "workers")]


async def freeze_while_holding(client: aioredis.Redis, prefix: str, proc: object,
                               ids: list[str] | None = None) -> None:
    """SIGSTOP the worker at a moment it holds entries it has read, so the kill is mid-run.

    With ``ids``, wait until it has also *started* one of them (read is not enough: its
    batched start script may not have run yet, and a task never started is not re-run)."""
    pid: int = proc.pid  # type: ignore[attr-defined]
    async with asyncio.timeout(30):
        while True:
            proc.send_signal(signal.SIGSTOP)  # type: ignore[attr-defined]
            if await pending_of(client, prefix, pid) and (
                ids is None or await started_by(client, prefix, pid, ids)
            ):
                return
            proc.send_signal(signal.SIGCONT)  # type: ignore[attr-defined]
            await asyncio.sleep(0.01)


async def started_by(client: aioredis.Redis, prefix: str, pid: int, ids: list[str]) -> bool:
    """Whether the worker with this pid is running one of ``ids`` right now."""
    async with client.pipeline(transaction=False) as pipe:
        for task_id in ids:
            pipe.hmget(f"{prefix}:task:{task_id}", "state", "worker")
        fields = await pipe.execute()
    return any(state == b"running" and worker and f":{pid}:".encode() in worker
               for state, worker in fields)


async def test_kill_9_of_one_of_two_workers_loses_nothing_with_default_settings(
    producer: RedisTasks, start_worker: WorkerFactory, client: aioredis.Redis, prefix: str
) -> None:
    # "mark_once" has retries=0: a worker's death must not cost the task its only attempt.
    ids = [await producer.enqueue("mark_once", i) for i in range(2000)]
    doomed = start_worker(concurrency=8, visibility=1.0)
    survivor = start_worker(concurrency=8, visibility=1.0)
    await freeze_while_holding(client, prefix, doomed, ids)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(10)
    async with asyncio.timeout(90):
        infos = [await producer.wait(task_id) for task_id in ids]
        # Its consumer, once its entries were taken over, is removed from the group.
        for _ in range(300):  # polling Redis, bounded by the timeout too
            if not any(f":{doomed.pid}:" in name for name in await consumers(client, prefix)):
                break
            await asyncio.sleep(0.2)
    assert not any(f":{doomed.pid}:" in name for name in await consumers(client, prefix))
    states = collections.Counter(info.state for info in infos)
    assert states == {TaskState.SUCCEEDED: 2000}, states
    assert await producer.dead_letters() == []
    assert sorted(info.result for info in infos) == list(range(2000))
    assert await client.xlen(f"{prefix}:stream") == 0
    retaken = [info for info in infos if info.attempts == 2]
    assert retaken and all(info.max_attempts == 1 for info in retaken)
    stop_gracefully(survivor)


async def test_a_task_that_keeps_killing_its_worker_is_dead_after_max_deliveries(
    producer: RedisTasks, start_worker: WorkerFactory, client: aioredis.Redis, prefix: str
) -> None:
    settings = {"JOEY_TEST_MAX_DELIVERIES": "2"}
    task_id = await producer.enqueue("suicide", "s")
    for _ in range(2):
        worker = start_worker(visibility=0.5, extra_env=settings)
        async with asyncio.timeout(30):
            assert await wait_started(client, prefix, "s") == worker.pid
        assert worker.wait(10) == -signal.SIGKILL
    last = start_worker(visibility=0.5, extra_env=settings)
    async with asyncio.timeout(30):
        info = await producer.wait(task_id)
    assert info.state is TaskState.DEAD and info.attempts == 2
    assert info.error is not None and info.error.startswith("WorkerLost: delivered 2 times")
    assert await client.llen(f"{prefix}:s:started") == 0  # the third delivery never ran
    assert [d.id for d in await producer.dead_letters()] == [task_id]
    stop_gracefully(last)


async def test_redis_restart_mid_run_loses_nothing_and_runs_nothing_twice(
    own_redis_aof: RedisServer, start_worker: WorkerFactory, prefix: str, tmp_path: Path
) -> None:
    url = own_redis_aof.url
    env = {"JOEY_TEST_RUNLOG": str(tmp_path)}
    producer = RedisTasks(url, prefix=prefix, consume=False)
    async with producer:
        ids = [await producer.enqueue("mark_once", i) for i in range(2000)]
    workers = [
        start_worker(concurrency=8, visibility=3.0, url=url, extra_env=env) for _ in range(2)
    ]

    def completed() -> list[int]:
        return [int(line) for log in tmp_path.glob("*.log") for line in log.read_text().split()]

    deadline = time.monotonic() + 30
    while len(completed()) < 300:  # restart mid-run
        assert time.monotonic() < deadline, "the workers did not run"
        await asyncio.sleep(0.02)
    own_redis_aof.stop()
    await asyncio.sleep(0.5)  # down long enough for every worker to notice
    own_redis_aof.start()

    producer = RedisTasks(url, prefix=prefix, consume=False)
    async with producer:
        async with asyncio.timeout(90):
            infos = [await producer.wait(task_id) for task_id in ids]
        dead = await producer.dead_letters()
    for worker in workers:
        stop_gracefully(worker)
    states = collections.Counter(info.state for info in infos)
    assert states == {TaskState.SUCCEEDED: 2000}, states
    assert dead == []
    runs = collections.Counter(completed())
    assert sorted(runs) == list(range(2000))  # 0 lost
    assert [i for i, n in runs.items() if n > 1] == []  # 0 completed runs repeated


async def test_a_periodic_task_runs_exactly_once_per_tick_across_three_workers(
    start_worker: WorkerFactory, client: aioredis.Redis, prefix: str
) -> None:
    every = 0.4
    workers = [start_worker(extra_env={"JOEY_TEST_PERIODIC": str(every)}) for _ in range(3)]
    async with asyncio.timeout(30):
        for _ in range(600):
            if await client.llen(f"{prefix}:ticks") >= 11:
                break
            await asyncio.sleep(0.05)
    for worker in workers:
        stop_gracefully(worker)
    runs = [entry.decode().split() for entry in await client.lrange(f"{prefix}:ticks", 0, -1)]
    # Each run started within a tick's own interval: its slot is its tick. Ten ticks in a row
    # (the eleventh may still be settling), exactly one run each, from any of the workers.
    slots = [int(float(at) // every) for at, _ in runs][:10]
    assert slots == list(range(slots[0], slots[0] + 10)), slots
    assert len({pid for _, pid in runs}) >= 1
