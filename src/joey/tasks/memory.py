"""The in-process task backend: the default, no setup, no serialization.

How it runs, without a single polling loop:

* `enqueue` either hands the task straight to a new *runner* (when fewer than `max_concurrency`
  are active) or appends it to the ready deque. A runner runs tasks one after another, taking the
  next from the deque when it finishes, and exits when the deque is empty. The active-runner count
  is changed only in synchronous code, so it can never exceed `max_concurrency`.
* A delayed task or a retry waiting for its backoff is a `loop.call_later` timer that dispatches
  it when due.
* A full queue parks `enqueue` callers on futures that are woken, one per freed place, when a
  task starts.

What it remembers of each task (the record, the bounds on finished and dead ones, the `wait()`
callers) is a `RecordBook` (`memory_records.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable
from typing import Any

from .attempt import TaskRun, call_task, cancel_and_wait
from .base import EnqueueOptions, TaskBackend, WhenFull, periodic_tasks
from .definition import TaskDef, resolve_timeout
from .errors import QueueFull, TaskNotRegistered, TasksNotRunning, error_text
from .memory_records import RecordBook, TaskRecord
from .periodic import run_schedules
from .state import TaskInfo, TaskState

__all__ = ["InMemoryTasks"]

logger = logging.getLogger("joey.tasks")

_QUEUED = TaskState.QUEUED
_RUNNING = TaskState.RUNNING
_SUCCEEDED = TaskState.SUCCEEDED
_FAILED = TaskState.FAILED
_DEAD = TaskState.DEAD
_CANCELLED = TaskState.CANCELLED
_ACTIVE = frozenset({_QUEUED, _RUNNING, _FAILED})


class InMemoryTasks(TaskBackend):
    """Run tasks inside this process, on its event loop (sync functions in a thread pool).

    * `max_concurrency`: tasks running at once, exactly.
    * `max_queue`: tasks accepted but not started yet (delayed ones included); when it is
      reached, `enqueue` waits for a place (``when_full="wait"``) or raises `QueueFull`
      (``when_full="raise"``).
    * `shutdown_timeout`: how long `stop()` lets running tasks finish before cancelling them.
    * `keep_finished` / `keep_dead`: how many finished / dead tasks `status()` remembers.

    Tasks live in memory: they are lost if the process dies. Use `RedisTasks` for durability.

    Example::

        tasks = InMemoryTasks(max_concurrency=4)

        @tasks.task(retries=2)
        async def resize(image_id: int) -> None: ...

        async with tasks:
            async with asyncio.timeout(10):
                info = await tasks.wait(await tasks.enqueue(resize, 7))
    """

    def __init__(
        self,
        *,
        max_concurrency: int = 10,
        max_queue: int = 10_000,
        when_full: WhenFull = "wait",
        shutdown_timeout: float = 10.0,
        keep_finished: int = 10_000,
        keep_dead: int = 1_000,
    ) -> None:
        super().__init__(max_concurrency=max_concurrency, shutdown_timeout=shutdown_timeout)
        if max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, got {max_queue}")
        if when_full not in ("wait", "raise"):
            raise ValueError(f'when_full must be "wait" or "raise", got {when_full!r}')
        self.max_queue = max_queue
        self.when_full: WhenFull = when_full
        self.keep_finished = keep_finished
        self.keep_dead = keep_dead
        self._book = RecordBook()
        self._ready: deque[TaskRecord] = deque()
        self._timed: set[TaskRecord] = set()  # delayed first runs and retries waiting for backoff
        self._runners: set[asyncio.Task[None]] = set()
        self._active = 0  # runners alive; the exact concurrency count
        self._pending = 0  # places taken in the bounded queue
        self._space_waiters: deque[asyncio.Future[None]] = deque()
        self._unstarted: list[TaskRecord] = []  # filed by runners while stop() runs
        self._cancelled: list[TaskRecord] = []  # running tasks stop() had to cancel
        self._unique: dict[str, TaskRecord] = {}  # unique key -> its queued or running task
        self._periodic: asyncio.Task[None] | None = None
        self._running = False
        self._closing = False
        self._stopped: asyncio.Event | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._running:
            return
        self._open_executor()
        self._closing = False
        self._running = True
        self._stopped = asyncio.Event()
        if periodic_tasks(self):
            self._periodic = asyncio.create_task(
                run_schedules(periodic_tasks(self), self._claim_tick), name="joey-tasks-periodic"
            )

    async def stop(self) -> None:
        if not self._running:
            return
        assert self._stopped is not None
        if self._closing:  # a second concurrent stop() waits for the first
            await self._stopped.wait()
            return
        self._closing = True
        if self._periodic is not None:
            await cancel_and_wait([self._periodic])
            self._periodic = None
        for fut in self._space_waiters:
            if not fut.done():
                fut.set_result(None)  # they see `_closing` and raise TasksNotRunning
        self._space_waiters.clear()

        unstarted = list(self._ready)
        self._ready.clear()
        for rec in self._timed:
            if rec.timer is not None:
                rec.timer.cancel()
                rec.timer = None
            unstarted.append(rec)
        self._timed.clear()

        cancelled: list[TaskRecord] = []
        if self._runners:
            # A runner created just before stop() sees `_closing` on its first step and
            # files its task under `_unstarted` instead of running it.
            _, late = await asyncio.wait(set(self._runners), timeout=self.shutdown_timeout)
            await cancel_and_wait(late, every=1.0)
        cancelled, self._cancelled = self._cancelled, []
        unstarted += self._unstarted
        self._unstarted = []
        for rec in unstarted:
            self._end(rec, _CANCELLED, "never started: the task backend stopped")
        if unstarted:
            logger.warning(
                "task backend stopped: %d queued task(s) never started: %s",
                len(unstarted),
                _summary(unstarted),
            )
        if cancelled:
            logger.warning(
                "task backend stopped: %d running task(s) cancelled after shutdown_timeout=%gs: %s",
                len(cancelled),
                self.shutdown_timeout,
                _summary(cancelled),
            )
        self._close_executor()
        if self._metrics is not None:  # never to start in this process
            self._metrics.queued.dec(self._pending)
        self._pending = 0
        self._active = 0
        self._running = False
        self._stopped.set()

    # -- enqueueing ---------------------------------------------------------------------------

    async def _submit(
        self,
        task: Callable[..., Any] | str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        opts: EnqueueOptions | None,
        trace: dict[str, str] | None,
    ) -> str:
        if not self._running or self._closing:
            raise TasksNotRunning(
                "InMemoryTasks is not running: the app starts it at startup (run the app's "
                "lifespan, e.g. enter the test client as a context manager) "
                "or use `async with tasks:`"
            )
        defn = self._lookup(task)
        if defn is None:
            raise TaskNotRegistered(
                f"no task named {task!r}; registered: {', '.join(sorted(self._by_name)) or 'none'}"
            )
        unique = opts.unique if opts is not None else None
        woken = False  # handed a freed place by a task that started
        while True:
            # The unique check and the reservation below run with no await in between, so no
            # other enqueue can slip in: after a wait for a place, the key is checked again.
            if unique is not None:
                assert opts is not None
                known = self._unique.get(unique)
                if known is not None and known.state in _ACTIVE:
                    if not opts.replace:
                        if woken and self._pending < self.max_queue:
                            self._wake_one()  # the place we were woken for: pass it on
                        return known.id
                    if known.state is not _RUNNING:
                        self._replace(known)
            if self._pending < self.max_queue:
                break
            when_full = (opts.when_full if opts else None) or self.when_full
            await self._wait_for_space(when_full)
            woken = True

        timeout = defn.timeout
        retries = defn.retries
        backoff = defn.backoff
        delay = None
        if opts is not None:
            timeout = opts.timeout if opts.timeout is not None else timeout
            retries = opts.retries if opts.retries is not None else retries
            backoff = opts.backoff or backoff
            delay = opts.delay
        task_id = uuid.uuid4().hex
        rec = TaskRecord(
            task_id, defn, args, kwargs, resolve_timeout(timeout), retries + 1, backoff
        )
        rec.trace = trace
        self._book.add(rec)
        self._pending += 1
        if unique is not None:
            rec.unique = unique
            self._unique[unique] = rec
        metrics = self._metrics
        if metrics is not None:
            metrics.enqueued.labels(defn.name).inc()
            metrics.queued.inc()
        if delay:
            self._schedule(rec, delay)
        else:
            self._dispatch(rec)
        return task_id

    def _replace(self, rec: TaskRecord) -> None:
        """Cancel a unique task that has not started yet, for a new one with its key."""
        if rec.timer is not None:
            rec.timer.cancel()
            rec.timer = None
        self._timed.discard(rec)
        with contextlib.suppress(ValueError):
            self._ready.remove(rec)
        if rec.counted:
            rec.counted = False
            self._pending -= 1
            if self._metrics is not None:
                self._metrics.queued.dec()
        self._end(rec, _CANCELLED, "Replaced: by a task enqueued with the same unique key")

    async def _claim_tick(self, defn: TaskDef, tick: float) -> bool:
        """One process, one loop: every tick is this process's to run."""
        await self._submit(defn.fn, (), {}, None, None)  # a tick starts its own trace
        return True

    async def _wait_for_space(self, when_full: WhenFull) -> None:
        """Wait until a task starts and frees a place (or raise `QueueFull`); the caller
        checks again: the place may be gone by the time it runs."""
        if when_full == "raise":
            raise QueueFull(f"the task queue is full ({self.max_queue} tasks waiting to start)")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._space_waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.cancelled():
                self._space_waiters.remove(fut)
            elif not self._closing:
                self._wake_one()  # woken and cancelled at once: pass the place on
            raise
        if self._closing:
            raise TasksNotRunning("the task backend is stopping: no new tasks")

    def _wake_one(self) -> None:
        while self._space_waiters:
            fut = self._space_waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    # -- scheduling ---------------------------------------------------------------------------

    def _schedule(self, rec: TaskRecord, delay: float) -> None:
        loop = asyncio.get_running_loop()
        rec.run_at = time.time() + delay
        rec.timer = loop.call_later(delay, self._due, rec)
        self._timed.add(rec)

    def _due(self, rec: TaskRecord) -> None:
        rec.timer = None
        self._timed.discard(rec)
        if rec.state is _FAILED:
            rec.move(_QUEUED)
        self._dispatch(rec)

    def _dispatch(self, rec: TaskRecord) -> None:
        if self._active < self.max_concurrency:
            self._active += 1
            # A context of its own: the runner goes on to run later tasks, and no run sees the
            # request (its id, its span) that happened to enqueue when a slot was free; as in
            # a Redis worker, a run's trace comes from its task (see attempt.call_task).
            runner = asyncio.get_running_loop().create_task(
                self._runner(rec), context=contextvars.Context())
            self._runners.add(runner)
            runner.add_done_callback(self._runners.discard)
        else:
            self._ready.append(rec)

    async def _runner(self, rec: TaskRecord) -> None:
        try:
            while True:
                if self._closing:
                    self._unstarted.append(rec)
                    return
                if rec.state is not _CANCELLED:  # not replaced while waiting for the runner
                    await self._run(rec)
                # No await between this check and `_active -= 1`: a task dispatched meanwhile
                # either lands in the deque before the check or finds a free slot after it.
                if not self._ready:
                    return
                rec = self._ready.popleft()
        finally:
            self._active -= 1

    async def _run(self, rec: TaskRecord) -> None:
        metrics = self._metrics
        if rec.counted:
            rec.counted = False
            self._pending -= 1
            if metrics is not None:
                metrics.queued.dec()
            if self._space_waiters:
                self._wake_one()
        if metrics is not None:
            metrics.started.labels(rec.defn.name).inc()
        rec.move(_RUNNING)
        rec.attempts += 1
        rec.started_at = time.time()
        rec.run_at = None
        began = time.perf_counter()
        try:
            result = await call_task(rec.defn, rec.args, rec.kwargs, rec.timeout, self._executor,
                                     TaskRun(rec.id, rec.defn.name, rec.attempts),
                                     self._tracing, rec.trace)
        except asyncio.CancelledError as exc:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                # stop() cancelled us after shutdown_timeout.
                self._end(rec, _CANCELLED, "CancelledError: cancelled at shutdown")
                self._cancelled.append(rec)
                raise
            self._failed(rec, exc)  # the task body raised CancelledError on its own
        except Exception as exc:
            self._failed(rec, exc)
        else:
            rec.result = result
            self._end(rec, _SUCCEEDED, None)
        if metrics is not None:
            state = rec.state
            outcome = "succeeded" if state is _SUCCEEDED else "dead" if state is _DEAD else (
                "failed")
            metrics.ran(rec.defn.name, time.perf_counter() - began, outcome)

    def _failed(self, rec: TaskRecord, exc: BaseException) -> None:
        rec.error = error_text(exc)
        if rec.attempts < rec.max_attempts:
            delay = rec.backoff.delay(rec.attempts)
            rec.move(_FAILED)
            if self._closing:
                # The retry will never run: stop() reports it with the never-started tasks.
                self._unstarted.append(rec)
                return
            logger.warning(
                "task %s %s failed (attempt %d of %d), retrying in %.2fs: %s",
                rec.defn.name,
                rec.id,
                rec.attempts,
                rec.max_attempts,
                delay,
                rec.error,
            )
            self._schedule(rec, delay)
            return
        logger.error(
            "task %s %s is dead after %d attempt(s): %s",
            rec.defn.name,
            rec.id,
            rec.attempts,
            rec.error,
            exc_info=exc,
        )
        self._end(rec, _DEAD, rec.error)

    def _end(self, rec: TaskRecord, state: TaskState, error: str | None) -> None:
        """Move `rec` to a final state: its unique key is free again, its waiters wake."""
        if rec.unique is not None and self._unique.get(rec.unique) is rec:
            del self._unique[rec.unique]
        keep = self.keep_dead if state is _DEAD else self.keep_finished
        self._book.end(rec, state, error, keep)

    # -- reading state ------------------------------------------------------------------------

    async def status(self, task_id: str) -> TaskInfo | None:
        rec = self._book.get(task_id)
        return None if rec is None else rec.info()

    async def wait(self, task_id: str) -> TaskInfo:
        return await self._book.wait(task_id)

    async def join(self) -> None:
        """Wait until every task accepted so far has ended (succeeded, dead or cancelled),
        with the tasks they enqueue meanwhile: delayed ones and retries waiting for their
        backoff included. For tests, which assert what the tasks did; bound it
        (``asyncio.timeout``), or use ``TestClient.wait_for_tasks()``, which does.

        Example::

            tasks = InMemoryTasks()

            @tasks.task
            async def count(n: int) -> int:
                return n + 1

            async with tasks:
                await tasks.enqueue(count, 1)
                async with asyncio.timeout(10):
                    await tasks.join()
        """
        while pending := self._book.unfinished():
            await asyncio.gather(*(self._book.wait(rec.id) for rec in pending))

    def unfinished(self) -> str:
        """The tasks not ended yet, by name (``"send_email x2, report x1"``; empty if none)."""
        return _summary(self._book.unfinished())

    async def dead_letters(self, limit: int = 100) -> list[TaskInfo]:
        return self._book.dead_letters(limit)

    async def requeue(self, task_id: str) -> bool:
        rec = self._book.dead(task_id)
        if rec is None:
            return False
        if not self._running or self._closing:
            raise TasksNotRunning("the task backend is not running")
        self._book.revive(rec)
        self._dispatch(rec)
        return True


def _summary(records: Iterable[TaskRecord]) -> str:
    """``"send_email x3, build_report x1"``: task names by count, most frequent first."""
    counts = Counter(rec.defn.name for rec in records)
    return ", ".join(f"{name} x{n}" for name, n in counts.most_common())
