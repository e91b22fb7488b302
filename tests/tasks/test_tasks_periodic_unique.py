"""Periodic schedules (cron, intervals), unique jobs in both backends, and `joey tasks`."""

from __future__ import annotations

import asyncio
import calendar
import sys
import types
from collections.abc import AsyncIterator
from datetime import datetime

import pytest

from joey.__main__ import main
from joey.tasks import InMemoryTasks, RedisTasks, TaskBackend, TaskState
from joey.tasks.periodic import Cron, Every, make_schedule


def ts(text: str) -> float:
    return float(calendar.timegm(datetime.fromisoformat(text).utctimetuple()))


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("*/5 * * * *", "2026-01-01T10:03:59", "2026-01-01T10:05:00"),
        ("*/5 * * * *", "2026-01-01T10:05:00", "2026-01-01T10:10:00"),
        ("0 3 * * *", "2026-01-01T03:00:00", "2026-01-02T03:00:00"),
        ("30 9 * * 1-5", "2026-01-02T10:00:00", "2026-01-05T09:30:00"),  # Fri -> Mon
        ("0 0 29 2 *", "2026-03-01T00:00:00", "2028-02-29T00:00:00"),
        ("0 0 1 * 0", "2026-01-01T00:00:00", "2026-01-04T00:00:00"),  # day OR Sunday
        ("@hourly", "2026-01-01T10:59:00", "2026-01-01T11:00:00"),
        ("15,45 * * * 7", "2026-01-04T00:20:00", "2026-01-04T00:45:00"),  # 7 is Sunday
    ],
)
def test_cron_next_tick(expression: str, after: str, expected: str) -> None:
    cron = Cron(expression)
    assert cron.next_after(ts(after)) == ts(expected)
    assert cron.last_at_or_before(ts(expected)) == ts(expected)
    assert cron.last_at_or_before(ts(expected) + 1) == ts(expected)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * * *", "needs 5 fields"),
        ("61 * * * *", "minute field '61' is outside 0-59"),
        ("a * * * *", "bad minute field"),
        ("*/0 * * * *", "outside"),
        ("0 0 31 2 *", "never matches"),
    ],
)
def test_bad_cron_expressions_are_refused_at_registration(expression: str, message: str) -> None:
    tasks = InMemoryTasks()
    with pytest.raises(ValueError, match=message):

        @tasks.task(cron=expression)
        async def job() -> None: ...

        Cron(expression).next_after(0)


def test_every_is_aligned_and_options_are_checked() -> None:
    every = Every(10)
    assert every.next_after(1005.0) == 1010.0 and every.next_after(1010.0) == 1020.0
    assert every.last_at_or_before(1019.9) == 1010.0
    with pytest.raises(ValueError, match="not both"):
        make_schedule("* * * * *", 5)
    with pytest.raises(ValueError, match="positive"):
        make_schedule(None, 0)
    assert make_schedule(None, None) is None


async def test_in_memory_periodic_task_runs_each_tick() -> None:
    tasks = InMemoryTasks()
    runs: list[float] = []

    @tasks.task(name="tick", every=0.05)
    async def tick() -> None:
        runs.append(asyncio.get_running_loop().time())

    async with tasks:
        await asyncio.sleep(0.33)
    assert 4 <= len(runs) <= 7
    count = len(runs)
    await asyncio.sleep(0.12)
    assert len(runs) == count  # stopped with the backend


# -- unique jobs -------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "redis"])
async def backend(
    request: pytest.FixtureRequest, redis_url: str, prefix: str
) -> AsyncIterator[TaskBackend]:
    memory = request.param == "memory"
    tasks: TaskBackend = InMemoryTasks() if memory else RedisTasks(redis_url, prefix=prefix)
    yield tasks
    await tasks.stop()


async def test_unique_jobs_keep_or_replace(backend: TaskBackend) -> None:
    release = asyncio.Event()
    ran: list[int] = []

    @backend.task(name="reindex")
    async def reindex(n: int) -> int:
        ran.append(n)
        await release.wait()
        return n

    await backend.start()
    unique = backend.options(unique="user:7")
    first = await unique.enqueue(reindex, 1)
    async with asyncio.timeout(10):
        while not ran:  # noqa: ASYNC110 - the task runs on this loop
            await asyncio.sleep(0.01)
        assert await unique.enqueue(reindex, 2) == first  # running: the same task
        later = await backend.options(delay=30, unique="user:8").enqueue(reindex, 3)
        replacing = await backend.options(unique="user:8", replace=True).enqueue(reindex, 4)
        assert replacing != later
        replaced = await backend.wait(later)
        assert replaced.state is TaskState.CANCELLED and replaced.error is not None
        assert replaced.error.startswith("Replaced")
        release.set()
        assert (await backend.wait(first)).result == 1
        assert (await backend.wait(replacing)).result == 4
        again = await unique.enqueue(reindex, 5)  # the key is free once the task is done
        assert again != first and (await backend.wait(again)).result == 5
    assert sorted(ran) == [1, 4, 5]
    with pytest.raises(ValueError, match="needs a unique key"):
        backend.options(replace=True)


# -- joey tasks ----------------------------------------------------------------------------------


async def test_joey_tasks_shows_requeues_drops_and_reports_metrics(
    redis_url: str,
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    worker = RedisTasks(redis_url, prefix=prefix)

    @worker.task(name="broken")
    async def broken() -> None:
        raise ValueError("no")

    @worker.task(name="fine")
    async def fine() -> None: ...

    async with worker:
        dead = [await worker.enqueue(broken) for _ in range(2)]
        for task_id in dead:
            await worker.wait(task_id)
        await worker.wait(await worker.enqueue(fine))
    producer = RedisTasks(redis_url, prefix=prefix, consume=False)
    async with producer:
        await producer.enqueue("fine")
        await producer.options(delay=60).enqueue("fine")
    module = types.ModuleType("joey_test_ops_app")
    module.app = types.SimpleNamespace(  # type: ignore[attr-defined]
        tasks=RedisTasks(redis_url, prefix=prefix, consume=False)
    )
    monkeypatch.setitem(sys.modules, "joey_test_ops_app", module)

    def run(*argv: str) -> tuple[int, str, str]:
        status = main(["tasks", "joey_test_ops_app:app", *argv])
        out, err = capsys.readouterr()
        return status, out, err

    status, out, _ = await asyncio.to_thread(run)
    assert status == 0
    lines = [line.split() for line in out.splitlines()]
    assert lines[0] == ["task", "queued", "running", "scheduled", "dead"]
    assert ["broken", "0", "0", "0", "2"] in lines and ["fine", "1", "0", "1", "0"] in lines

    status, out, _ = await asyncio.to_thread(run, "metrics")
    assert status == 0
    assert 'joey_tasks{task="broken",state="dead"} 2' in out
    assert 'joey_tasks_finished_total{task="broken",outcome="dead"} 2' in out
    assert 'joey_tasks_finished_total{task="fine",outcome="succeeded"} 1' in out
    assert 'joey_task_run_seconds_total{task="fine"}' in out

    assert (await asyncio.to_thread(run, "requeue"))[0] == 2  # ids or --all needed
    status, out, _ = await asyncio.to_thread(run, "requeue", dead[0])
    assert status == 0 and f"requeue: {dead[0]}" in out
    status, _, err = await asyncio.to_thread(run, "drop", dead[0])
    assert status == 1 and "is not a dead task" in err  # requeued: no longer dead
    status, out, _ = await asyncio.to_thread(run, "drop", "--all")
    assert status == 0 and f"drop: {dead[1]}" in out
    async with producer:
        assert await producer.dead_letters() == []
        assert await producer.status(dead[1]) is None
        info = await producer.status(dead[0])
        assert info is not None and info.state is TaskState.QUEUED
