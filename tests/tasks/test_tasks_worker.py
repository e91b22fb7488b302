"""`joey worker` processes against a real redis-server: cross-process runs, SIGTERM, SIGKILL."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from joey.__main__ import main
from joey.tasks import InMemoryTasks, RedisTasks, TaskState
from tests.tasks.conftest import WorkerFactory, stop_gracefully


@pytest.fixture
async def producer(redis_url: str, prefix: str) -> AsyncIterator[RedisTasks]:
    """A web-process-like backend: it enqueues by name and never consumes."""
    tasks = RedisTasks(redis_url, prefix=prefix, consume=False)
    async with tasks:
        yield tasks


async def wait_started(client: aioredis.Redis, prefix: str, key: str) -> int:
    """Block (in Redis, bounded) until a task announces its start; returns the worker's pid."""
    reply = await client.blpop([f"{prefix}:{key}:started"], timeout=20)
    assert reply is not None, "the task never started"
    return int(reply[1])


async def pending_of(client: aioredis.Redis, prefix: str, pid: int) -> int:
    """How many stream entries the worker with this pid holds (read, not acknowledged)."""
    consumers = await client.xinfo_consumers(f"{prefix}:stream", "workers")
    return sum(int(c["pending"]) for c in consumers if f":{pid}:" in c["name"].decode())


async def test_enqueue_here_run_in_a_worker_process(
    producer: RedisTasks, start_worker: WorkerFactory
) -> None:
    worker = start_worker()
    task_id = await producer.enqueue("pid", "hello")
    async with asyncio.timeout(30):
        info = await producer.wait(task_id)
    assert info.state is TaskState.SUCCEEDED
    assert info.result == ["hello", worker.pid]
    log = stop_gracefully(worker)
    assert "SIGTERM received" in log and "worker stopped" in log


async def test_sigterm_hands_running_task_back(
    producer: RedisTasks, start_worker: WorkerFactory, client: aioredis.Redis, prefix: str
) -> None:
    worker = start_worker(shutdown=0.2)
    task_id = await producer.enqueue("hang", "h")
    async with asyncio.timeout(30):
        await wait_started(client, prefix, "h")
    log = stop_gracefully(worker)
    assert "1 running task(s) cancelled" in log and "hang x1" in log
    info = await producer.status(task_id)
    assert info is not None and info.state is TaskState.QUEUED and info.attempts == 0


async def test_killed_worker_task_finishes_in_another_worker(
    producer: RedisTasks, start_worker: WorkerFactory, client: aioredis.Redis, prefix: str
) -> None:
    doomed = start_worker(visibility=1.0)
    task_id = await producer.enqueue("hang_first_time", "k")
    async with asyncio.timeout(30):
        assert await wait_started(client, prefix, "k") == doomed.pid
    killed_at = time.monotonic()
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(10)
    # How long the entry had been idle (since its read or last heartbeat) at the kill: at
    # most this, measured just after it.
    [held] = await client.xpending_range(f"{prefix}:stream", "workers", "-", "+", 10)
    idle_at_kill = held["time_since_delivered"] / 1000
    survivor = start_worker(visibility=1.0)
    async with asyncio.timeout(30):
        assert await wait_started(client, prefix, "k") == survivor.pid
        restarted_after = time.monotonic() - killed_at
        info = await producer.wait(task_id)
    # Redelivered only once the dead worker's entry had been idle past visibility_timeout
    # (1 s). Timed from the kill: the survivor may start after the entry expired already (a
    # loaded machine), so a time from its start proves nothing and may be short.
    assert restarted_after >= 1.0 - idle_at_kill
    assert info.state is TaskState.SUCCEEDED and info.result == survivor.pid
    assert info.attempts == 2
    stop_gracefully(survivor)


async def test_nothing_lost_across_1000_tasks_with_a_killed_worker(
    producer: RedisTasks, start_worker: WorkerFactory, client: aioredis.Redis, prefix: str
) -> None:
    ids = [await producer.enqueue("mark", i) for i in range(1000)]
    doomed = start_worker(concurrency=8, visibility=1.0)
    # Freeze it while it holds tasks it has read (a backlog of 1000 makes that near certain),
    # so it is killed mid-run whatever the machine's speed.
    async with asyncio.timeout(30):
        while True:
            doomed.send_signal(signal.SIGSTOP)
            held = await pending_of(client, prefix, doomed.pid)
            if held:
                break
            doomed.send_signal(signal.SIGCONT)
            await asyncio.sleep(0.01)
    survivors = [start_worker(concurrency=8, visibility=1.0) for _ in range(2)]
    async with asyncio.timeout(60):
        assert await client.blpop([f"{prefix}:marks"], timeout=20) is not None  # they run
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(10)
        infos = [await producer.wait(task_id) for task_id in ids]
    assert {info.state for info in infos} == {TaskState.SUCCEEDED}
    assert sorted(info.result for info in infos) == list(range(1000))
    assert await pending_of(client, prefix, doomed.pid) == 0  # the `held` were taken over
    assert await client.scard(f"{prefix}:done") == 1000
    assert await client.xlen(f"{prefix}:stream") == 0
    for worker in survivors:
        stop_gracefully(worker)


def test_cli_rejects_bad_targets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["worker", "no_such_module_xyz:app"]) == 2
    assert "no_such_module_xyz" in capsys.readouterr().err


def test_cli_rejects_in_memory_backend(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import types

    module = types.ModuleType("joey_test_memory_app")
    module.app = types.SimpleNamespace(tasks=InMemoryTasks())  # type: ignore[attr-defined]
    monkeypatch.setitem(__import__("sys").modules, "joey_test_memory_app", module)
    assert main(["worker", "joey_test_memory_app:app"]) == 2
    assert "needs a RedisTasks backend" in capsys.readouterr().err
    assert main(["worker", "joey_test_memory_app:nope"]) == 2
    assert main(["worker", "joey_test_memory_app"]) == 2  # `app` by default
