"""The delivery guarantee, proven with `joey worker` processes and real redis-servers:
kill -9 of a worker, a Redis restart mid-run, periodic ticks across workers."""

from __future__ import annotations

import asyncio
import collections
import inspect
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from joey.tasks import RedisTasks, TaskInfo, TaskState
from tests.redis_server import RedisServer, keys
from tests.tasks.conftest import WorkerFactory, stop_gracefully
from tests.tasks.test_tasks_worker import pending_of, wait_started


@pytest.fixture
async def producer(redis_url: str, prefix: str) -> AsyncIterator[RedisTasks]:
    tasks = RedisTasks(redis_url, prefix=prefix, consume=False)
    async with tasks:
        yield tasks


async def consumers(client: aioredis.Redis, prefix: str) -> list[str]:
    return [c["name"].decode() for c in await client.xinfo_consumers(f"{prefix}:stream", "workers")]


async def freeze_while_holding(client: aioredis.Redis, prefix: str, proc: object) -> None:
    """SIGSTOP the worker at a moment it holds entries it has read, so the kill is mid-run (a
    first delivery runs as soon as it is read: no start is recorded before it)."""
    pid: int = proc.pid  # type: ignore[attr-defined]
    async with asyncio.timeout(30):
        while True:
            proc.send_signal(signal.SIGSTOP)  # type: ignore[attr-defined]
            if await pending_of(client, prefix, pid):
                return
            proc.send_signal(signal.SIGCONT)  # type: ignore[attr-defined]
            await asyncio.sleep(0.01)


async def kill_one_of_two_workers_mid_run(
    producer: RedisTasks, start_worker: WorkerFactory, client: aioredis.Redis, prefix: str,
    concurrency: int, visibility: float, shutdown: float, within: float,
) -> tuple[list[TaskInfo], subprocess.Popen[bytes], subprocess.Popen[bytes]]:
    """2000 tasks of "mark_once" (retries=0: a worker's death must not cost a task its only
    attempt) for two workers, one killed with -9 while it runs some; every task's outcome."""
    ids = [await producer.enqueue("mark_once", i) for i in range(2000)]
    settings = {"concurrency": concurrency, "visibility": visibility, "shutdown": shutdown}
    doomed = start_worker(**settings)
    survivor = start_worker(**settings)
    await freeze_while_holding(client, prefix, doomed)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(10)
    async with asyncio.timeout(within):
        infos = [await producer.wait(task_id) for task_id in ids]
    return infos, doomed, survivor


async def nothing_lost(producer: RedisTasks, client: aioredis.Redis, prefix: str,
                       infos: list[TaskInfo]) -> None:
    states = collections.Counter(info.state for info in infos)
    assert states == {TaskState.SUCCEEDED: 2000}, states
    assert await producer.dead_letters() == []
    assert sorted(info.result for info in infos) == list(range(2000))
    assert await client.xlen(f"{prefix}:stream") == 0
    # The runs the dead worker had begun ran again elsewhere, and cost no attempt.
    retaken = [info for info in infos if info.attempts == 2]
    assert retaken and all(info.max_attempts == 1 for info in retaken)


async def test_kill_9_of_one_of_two_workers_loses_nothing_and_its_consumer_is_reaped(
    producer: RedisTasks, start_worker: WorkerFactory, client: aioredis.Redis, prefix: str
) -> None:
    # A short visibility_timeout (1 s): the dead worker's tasks are taken over within a
    # second or two, and its consumer is reaped (after 3 x visibility_timeout) within the test.
    infos, doomed, survivor = await kill_one_of_two_workers_mid_run(
        producer, start_worker, client, prefix,
        concurrency=8, visibility=1.0, shutdown=2.0, within=90,
    )  # fmt: skip
    async with asyncio.timeout(90):
        for _ in range(300):  # polling Redis, bounded by the timeout too
            if not any(f":{doomed.pid}:" in name for name in await consumers(client, prefix)):
                break
            await asyncio.sleep(0.2)
    assert not any(f":{doomed.pid}:" in name for name in await consumers(client, prefix))
    await nothing_lost(producer, client, prefix, infos)
    stop_gracefully(survivor)


async def test_kill_9_of_one_of_two_workers_loses_nothing_with_the_default_settings(
    producer: RedisTasks, start_worker: WorkerFactory, client: aioredis.Redis, prefix: str
) -> None:
    # RedisTasks' own defaults (10 at once, visibility_timeout 30 s: the takeover comes 30 to
    # 40 s after the kill; its consumer is reaped after 90 s, past this test).
    defaults = inspect.signature(RedisTasks).parameters
    visibility = defaults["visibility_timeout"].default
    infos, _, survivor = await kill_one_of_two_workers_mid_run(
        producer, start_worker, client, prefix,
        concurrency=defaults["max_concurrency"].default, visibility=visibility,
        shutdown=defaults["shutdown_timeout"].default, within=visibility + 60,
    )  # fmt: skip
    await nothing_lost(producer, client, prefix, infos)
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
    runs = await client.llen(f"{prefix}:ticks")
    # Which tick each run was for: its task record keeps it. (Not the time each run began: on
    # a loaded machine a run may begin past the next tick, and looked like that tick's.)
    records = [await client.hmget(key, "name", "tick", "state")
               for key in await keys(client, f"{prefix}:task:*")]  # fmt: skip
    ran = sorted(float(tick) for name, tick, state in records
                 if name == b"tick" and state == b"succeeded")  # fmt: skip
    assert runs == len(ran) >= 11  # every claimed tick that ran, ran once
    assert len(set(ran)) == len(ran), ran  # no tick claimed twice, whichever worker asked
    slots = [round(tick / every) for tick in ran]
    assert all(abs(tick - slot * every) < 1e-6 for tick, slot in zip(ran, slots, strict=True))
    # A loop that wakes past the next tick skips to it (by design): a loaded machine may skip
    # one here and there, but no worse.
    assert slots[-1] - slots[0] + 1 <= 2 * len(slots), slots
