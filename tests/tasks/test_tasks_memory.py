"""InMemoryTasks: behaviour tested on a real event loop, timed by events, never by sleeps."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from joey.tasks import (
    Backoff,
    InMemoryTasks,
    QueueFull,
    TaskNotRegistered,
    TasksNotRunning,
    TaskState,
)

NO_WAIT = Backoff(base=0.0, jitter=0.0)


async def settle(rounds: int = 20) -> None:
    """Let every ready callback run (not a timing assumption: no timers are involved)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def test_runs_async_task_and_keeps_result(memory: InMemoryTasks) -> None:
    @memory.task
    async def add(a: int, b: int = 0) -> int:
        return a + b

    task_id = await memory.enqueue(add, 2, b=3)
    async with asyncio.timeout(5):
        info = await memory.wait(task_id)
    assert info.state is TaskState.SUCCEEDED
    assert info.result == 5
    assert (info.attempts, info.max_attempts) == (1, 1)
    assert info.args == (2,) and info.kwargs == {"b": 3}
    assert info.name.endswith("add")
    assert info.started_at is not None and info.finished_at is not None


async def test_sync_task_runs_in_thread_pool(memory: InMemoryTasks) -> None:
    @memory.task
    def where() -> str:
        return threading.current_thread().name

    async with asyncio.timeout(5):
        info = await memory.wait(await memory.enqueue(where))
    assert info.result.startswith("joey-task")
    assert info.result != threading.current_thread().name


async def test_status_follows_queued_running_succeeded(memory: InMemoryTasks) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    @memory.task
    async def gated() -> str:
        started.set()
        await release.wait()
        return "done"

    task_id = await memory.enqueue(gated)
    info = await memory.status(task_id)
    assert info is not None and info.state is TaskState.QUEUED
    async with asyncio.timeout(5):
        await started.wait()
    info = await memory.status(task_id)
    assert info is not None and info.state is TaskState.RUNNING and not info.done
    release.set()
    async with asyncio.timeout(5):
        info = await memory.wait(task_id)
    assert info.state is TaskState.SUCCEEDED and info.done
    assert await memory.status("no-such-id") is None
    with pytest.raises(LookupError):
        await memory.wait("no-such-id")


async def test_max_concurrency_is_exact() -> None:
    tasks = InMemoryTasks(max_concurrency=3)
    active = peak = 0
    three_running, release = asyncio.Event(), asyncio.Event()

    @tasks.task
    async def work() -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        if active == 3:
            three_running.set()
        await release.wait()
        active -= 1

    async with tasks:
        ids = [await tasks.enqueue(work) for _ in range(10)]
        async with asyncio.timeout(5):
            await three_running.wait()
        await settle()
        states = [(await tasks.status(i)).state for i in ids]  # type: ignore[union-attr]
        assert states.count(TaskState.RUNNING) == 3
        assert states.count(TaskState.QUEUED) == 7
        release.set()
        async with asyncio.timeout(5):
            for task_id in ids:
                assert (await tasks.wait(task_id)).state is TaskState.SUCCEEDED
    assert peak == 3


async def test_full_queue_raises_queue_full() -> None:
    tasks = InMemoryTasks(max_concurrency=1, max_queue=2, when_full="raise")
    started, release = asyncio.Event(), asyncio.Event()

    @tasks.task
    async def blocker() -> None:
        started.set()
        await release.wait()

    async with tasks:
        first = await tasks.enqueue(blocker)
        async with asyncio.timeout(5):
            await started.wait()  # once started, it no longer holds a place in the queue
        await tasks.enqueue(blocker)
        await tasks.enqueue(blocker)
        with pytest.raises(QueueFull):
            await tasks.enqueue(blocker)
        release.set()
        async with asyncio.timeout(5):
            await tasks.wait(first)


async def test_full_queue_waits_for_a_place() -> None:
    tasks = InMemoryTasks(max_concurrency=1, max_queue=1)  # when_full="wait" by default
    started, release = asyncio.Event(), asyncio.Event()

    @tasks.task
    async def blocker() -> None:
        started.set()
        await release.wait()

    async with tasks:
        await tasks.enqueue(blocker)
        async with asyncio.timeout(5):
            await started.wait()
        queued = await tasks.enqueue(blocker)  # takes the only place
        with pytest.raises(QueueFull):
            await tasks.options(when_full="raise").enqueue(blocker)
        waiting = asyncio.create_task(tasks.enqueue(blocker))
        await settle()
        assert not waiting.done()
        release.set()  # the first finishes, `queued` starts and frees its place
        async with asyncio.timeout(5):
            last = await waiting
            assert (await tasks.wait(queued)).state is TaskState.SUCCEEDED
            assert (await tasks.wait(last)).state is TaskState.SUCCEEDED


async def test_cancelled_enqueue_waiter_passes_its_place_on() -> None:
    tasks = InMemoryTasks(max_concurrency=1, max_queue=1)
    release = asyncio.Event()

    @tasks.task
    async def blocker() -> None:
        await release.wait()

    async with tasks:
        await tasks.enqueue(blocker)
        await settle()
        await tasks.enqueue(blocker)
        first = asyncio.create_task(tasks.enqueue(blocker))
        second = asyncio.create_task(tasks.enqueue(blocker))
        await settle()
        first.cancel()
        release.set()
        async with asyncio.timeout(5):
            last = await second
            assert (await tasks.wait(last)).state is TaskState.SUCCEEDED
        assert first.cancelled()


async def test_unique_key_holds_for_enqueues_waiting_for_a_place() -> None:
    tasks = InMemoryTasks(max_concurrency=1, max_queue=1, shutdown_timeout=0.5)
    release, hold = asyncio.Event(), asyncio.Event()
    ran: list[str] = []

    @tasks.task
    async def job(label: str) -> None:
        ran.append(label)
        await (hold if label.startswith("unique") else release).wait()

    async with tasks:
        await tasks.enqueue(job, "running")
        await settle()  # started: it holds no place
        await tasks.enqueue(job, "queued")  # the only place
        unique = tasks.options(unique="report:7")
        first = asyncio.create_task(unique.enqueue(job, "unique 1"))
        second = asyncio.create_task(unique.enqueue(job, "unique 2"))
        other = asyncio.create_task(tasks.enqueue(job, "other"))
        await settle()
        assert not (first.done() or second.done() or other.done())  # all wait for a place
        release.set()  # each task that starts frees a place, for one waiter
        async with asyncio.timeout(5):
            one, two = await asyncio.gather(first, second)
        # `second` found the key taken (its task runs) once it had its place...
        assert one == two
        async with asyncio.timeout(5):
            three = await other  # ... and passed the place on (or `other` would wait forever)
            hold.set()
            for task_id in (one, three):
                assert (await tasks.wait(task_id)).state is TaskState.SUCCEEDED
    assert sorted(ran) == ["other", "queued", "running", "unique 1"]


async def test_retries_until_success(memory: InMemoryTasks) -> None:
    calls = 0

    @memory.task(retries=3, backoff=NO_WAIT)
    async def flaky() -> int:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ValueError(f"boom {calls}")
        return calls

    async with asyncio.timeout(5):
        info = await memory.wait(await memory.enqueue(flaky))
    assert info.state is TaskState.SUCCEEDED
    assert (info.attempts, info.max_attempts, info.result, info.error) == (3, 4, 3, None)


async def test_failed_state_while_waiting_for_backoff(memory: InMemoryTasks) -> None:
    @memory.task(retries=1, backoff=Backoff(base=3600, max_delay=3600, jitter=0))
    async def fails() -> None:
        raise RuntimeError("nope")

    task_id = await memory.enqueue(fails)
    await settle()
    info = await memory.status(task_id)
    assert info is not None and info.state is TaskState.FAILED
    assert info.error == "RuntimeError: nope"
    assert info.run_at is not None and info.run_at > info.enqueued_at + 3000


async def test_dead_after_retries_then_requeue(memory: InMemoryTasks) -> None:
    fixed = False

    @memory.task(retries=2, backoff=NO_WAIT)
    def always_fails() -> str:
        if fixed:
            return "fixed"
        raise KeyError("missing")

    task_id = await memory.enqueue(always_fails)
    async with asyncio.timeout(5):
        info = await memory.wait(task_id)
    assert info.state is TaskState.DEAD
    assert info.attempts == 3 and info.error == "KeyError: 'missing'"
    assert [d.id for d in await memory.dead_letters()] == [task_id]

    fixed = True
    assert await memory.requeue(task_id)
    assert not await memory.requeue(task_id)  # no longer dead
    async with asyncio.timeout(5):
        info = await memory.wait(task_id)
    assert info.state is TaskState.SUCCEEDED and info.result == "fixed"
    assert await memory.dead_letters() == []


async def test_async_timeout(memory: InMemoryTasks) -> None:
    @memory.task(timeout=0.05)
    async def slow() -> None:
        await asyncio.Event().wait()

    async with asyncio.timeout(5):
        info = await memory.wait(await memory.enqueue(slow))
    assert info.state is TaskState.DEAD
    assert info.error is not None and info.error.startswith("TaskTimeout:")


async def test_sync_timeout_leaves_thread_to_finish(memory: InMemoryTasks) -> None:
    release = threading.Event()

    @memory.task(timeout=0.05)
    def stuck() -> None:
        release.wait(10)

    try:
        async with asyncio.timeout(5):
            info = await memory.wait(await memory.enqueue(stuck))
        assert info.state is TaskState.DEAD
        assert info.error is not None and info.error.startswith("TaskTimeout:")
    finally:
        release.set()


async def test_timeout_raised_by_task_itself_is_not_a_task_timeout(memory: InMemoryTasks) -> None:
    @memory.task(timeout=10)
    async def raises_timeout() -> None:
        raise TimeoutError("upstream timed out")

    async with asyncio.timeout(5):
        info = await memory.wait(await memory.enqueue(raises_timeout))
    assert info.error == "TimeoutError: upstream timed out"


async def test_task_raising_cancelled_error_is_a_failure(memory: InMemoryTasks) -> None:
    @memory.task
    async def self_cancelling() -> None:
        raise asyncio.CancelledError

    async with asyncio.timeout(5):
        info = await memory.wait(await memory.enqueue(self_cancelling))
    assert info.state is TaskState.DEAD and info.error == "CancelledError"


async def test_per_call_options_override_task_defaults(memory: InMemoryTasks) -> None:
    calls = 0

    @memory.task(retries=0, timeout=0.01)
    async def needs_options() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)  # longer than the task's own timeout
        if calls < 2:
            raise ValueError("first call fails")
        return calls

    opts = memory.options(retries=1, backoff=NO_WAIT, timeout=float("inf"))
    async with asyncio.timeout(5):
        info = await memory.wait(await opts.enqueue(needs_options))
    assert info.state is TaskState.SUCCEEDED and info.result == 2 and info.max_attempts == 2


async def test_delay_runs_later(memory: InMemoryTasks) -> None:
    # A delay long enough that a loaded machine cannot spend it letting the loop settle: the
    # task must not have run yet then. Its start is checked against its own enqueue time.
    @memory.task
    async def later() -> str:
        return "ran"

    task_id = await memory.options(delay=1.0).enqueue(later)
    await settle()
    info = await memory.status(task_id)
    assert info is not None and info.state is TaskState.QUEUED and info.attempts == 0
    assert info.run_at is not None and info.run_at >= info.enqueued_at + 1.0
    async with asyncio.timeout(30):
        info = await memory.wait(task_id)
    assert info.state is TaskState.SUCCEEDED
    # A timer on the loop's monotonic clock, read back on the wall clock: 10 ms of leeway.
    assert info.started_at is not None and info.started_at >= info.enqueued_at + 0.99


async def test_stop_reports_tasks_that_never_started(caplog: pytest.LogCaptureFixture) -> None:
    tasks = InMemoryTasks(max_concurrency=1, shutdown_timeout=5)
    started, release = asyncio.Event(), asyncio.Event()

    @tasks.task(name="blocker")
    async def blocker() -> None:
        started.set()
        await release.wait()

    @tasks.task(name="email")
    async def email(to: str) -> None: ...

    @tasks.task(name="report", retries=1, backoff=Backoff(base=3600))
    async def report() -> None:
        raise RuntimeError("will be retried in an hour")

    await tasks.start()
    running = await tasks.enqueue(blocker)
    async with asyncio.timeout(5):
        await started.wait()
    never = [await tasks.enqueue(email, "a@x"), await tasks.enqueue(email, "b@x")]
    never.append(await tasks.options(delay=3600).enqueue(email, "c@x"))
    # Let the running blocker finish only once stop() has begun.
    stopping = asyncio.create_task(tasks.stop())
    await settle()
    with pytest.raises(TasksNotRunning):
        await tasks.enqueue(email, "d@x")
    release.set()
    with caplog.at_level(logging.WARNING, logger="joey.tasks"):
        async with asyncio.timeout(5):
            await stopping
    assert (await tasks.status(running)).state is TaskState.SUCCEEDED  # type: ignore[union-attr]
    for task_id in never:
        info = await tasks.status(task_id)
        assert info is not None and info.state is TaskState.CANCELLED
        assert info.error is not None and "never started" in info.error
    [line] = [r.getMessage() for r in caplog.records if "never started" in r.getMessage()]
    assert "3 queued task(s) never started" in line and "email x3" in line


async def test_stop_cancels_running_tasks_after_shutdown_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tasks = InMemoryTasks(max_concurrency=2, shutdown_timeout=0.05)
    started = asyncio.Event()

    @tasks.task(name="forever")
    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    await tasks.start()
    task_id = await tasks.enqueue(forever)
    async with asyncio.timeout(5):
        await started.wait()
    with caplog.at_level(logging.WARNING, logger="joey.tasks"):
        async with asyncio.timeout(5):
            await tasks.stop()
    info = await tasks.status(task_id)
    assert info is not None and info.state is TaskState.CANCELLED
    assert any("1 running task(s) cancelled" in r.getMessage() for r in caplog.records)


async def test_retry_due_during_shutdown_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    tasks = InMemoryTasks(max_concurrency=1, shutdown_timeout=5)
    started, release = asyncio.Event(), asyncio.Event()

    @tasks.task(name="fails_late", retries=2, backoff=NO_WAIT)
    async def fails_late() -> None:
        started.set()
        await release.wait()
        raise RuntimeError("late")

    await tasks.start()
    task_id = await tasks.enqueue(fails_late)
    async with asyncio.timeout(5):
        await started.wait()
    stopping = asyncio.create_task(tasks.stop())
    await settle()
    release.set()
    with caplog.at_level(logging.WARNING, logger="joey.tasks"):
        async with asyncio.timeout(5):
            await stopping
    info = await tasks.status(task_id)
    assert info is not None and info.state is TaskState.CANCELLED and info.attempts == 1
    assert any("fails_late x1" in r.getMessage() for r in caplog.records)


async def test_enqueue_waiting_for_a_place_fails_when_stopping() -> None:
    tasks = InMemoryTasks(max_concurrency=1, max_queue=1, shutdown_timeout=0.05)

    @tasks.task
    async def forever() -> None:
        await asyncio.Event().wait()

    await tasks.start()
    await tasks.enqueue(forever)
    await settle()
    await tasks.enqueue(forever)
    waiting = asyncio.create_task(tasks.enqueue(forever))
    await settle()
    async with asyncio.timeout(5):
        await tasks.stop()
        with pytest.raises(TasksNotRunning):
            await waiting


async def test_enqueue_needs_a_started_backend() -> None:
    tasks = InMemoryTasks()

    @tasks.task
    async def noop() -> None: ...

    with pytest.raises(TasksNotRunning, match="async with tasks"):
        await tasks.enqueue(noop)


async def test_start_and_stop_are_idempotent_and_restartable() -> None:
    tasks = InMemoryTasks()

    @tasks.task
    async def one() -> int:
        return 1

    await tasks.stop()  # never started: nothing to do
    for _ in range(2):
        await tasks.start()
        await tasks.start()
        async with asyncio.timeout(5):
            assert (await tasks.wait(await tasks.enqueue(one))).result == 1
        await asyncio.gather(tasks.stop(), tasks.stop())
    with pytest.raises(TasksNotRunning):
        await tasks.enqueue(one)


async def test_two_backends_are_independent() -> None:
    first, second = InMemoryTasks(), InMemoryTasks()
    ran: list[str] = []

    async def job(tag: str) -> None:
        ran.append(tag)

    first.task(job)
    async with first, second:
        task_id = await first.enqueue(job, "first")
        async with asyncio.timeout(5):
            await first.wait(task_id)
        assert await second.status(task_id) is None
        with pytest.raises(TaskNotRegistered):
            await second.enqueue(job, "second")
    assert ran == ["first"]


async def test_enqueue_by_name_and_unknown_names(memory: InMemoryTasks) -> None:
    @memory.task(name="greet")
    async def greet(name: str) -> str:
        return f"hi {name}"

    async with asyncio.timeout(5):
        info = await memory.wait(await memory.enqueue("greet", "ann"))
    assert info.result == "hi ann"
    with pytest.raises(TaskNotRegistered, match="greet"):
        await memory.enqueue("gret", "bob")

    async def not_a_task() -> None: ...

    with pytest.raises(TaskNotRegistered, match=r"not_a_task .*test_tasks_memory\.py"):
        await memory.enqueue(not_a_task)


async def test_finished_records_are_bounded() -> None:
    tasks = InMemoryTasks(max_concurrency=1, keep_finished=2, keep_dead=1)

    @tasks.task
    async def ok() -> None: ...

    @tasks.task
    async def bad() -> None:
        raise ValueError

    async with tasks, asyncio.timeout(5):
        oks = [await tasks.enqueue(ok) for _ in range(3)]
        bads = [await tasks.enqueue(bad) for _ in range(2)]
        await tasks.wait(bads[1])  # one at a time, in order: all others finished before it
        assert await tasks.status(oks[0]) is None
        assert await tasks.status(oks[2]) is not None
        assert [d.id for d in await tasks.dead_letters()] == [bads[1]]


async def test_waiter_removed_when_wait_is_cancelled(memory: InMemoryTasks) -> None:
    release = asyncio.Event()

    @memory.task
    async def gated() -> None:
        await release.wait()

    task_id = await memory.enqueue(gated)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await memory.wait(task_id)
    release.set()
    async with asyncio.timeout(5):
        assert (await memory.wait(task_id)).state is TaskState.SUCCEEDED
