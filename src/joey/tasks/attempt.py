"""Running one attempt of a task, the same way in every backend: an async function on the event
loop, a sync one in the backend's own thread pool, either bounded by its timeout; and cancelling
the asyncio tasks a backend must see end.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from .definition import TaskDef
from .errors import TasksNotRunning, TaskTimeout

if TYPE_CHECKING:
    from joey.observability.tracing import Tracing

__all__ = ["TaskRun", "call_task", "cancel_and_wait", "current_task"]


class TaskRun:
    """The task attempt running in the current context: what :func:`current_task` returns,
    and what :class:`joey.observability.logs.JSONFormatter` adds to each log line.

    ``attempt`` counts from 1; ``None`` for a moment in a Redis worker, whose first delivery
    of a task starts running before Redis has answered which attempt it is.
    """

    __slots__ = ("attempt", "id", "name")

    def __init__(self, task_id: str, name: str, attempt: int | None) -> None:
        self.id = task_id
        self.name = name
        self.attempt = attempt

    def __repr__(self) -> str:
        return f"TaskRun({self.id!r}, {self.name!r}, attempt={self.attempt!r})"


# Module-level by nature: a ContextVar holds one value per context (per run's asyncio task).
_current: contextvars.ContextVar[TaskRun | None] = contextvars.ContextVar(
    "joey.task_run", default=None)


def current_task() -> TaskRun | None:
    """The task attempt this code runs in (inside a task's function), else ``None``.

    Example::

        @app.task
        async def build_report(day: str) -> str:
            run = current_task()
            assert run is not None and run.name.endswith("build_report")
            return f"report of {day}, attempt {run.attempt}"
    """
    return _current.get()


async def call_task(
    defn: TaskDef,
    args: tuple[Any, ...] | list[Any],
    kwargs: dict[str, Any],
    limit: float | None,
    executor: ThreadPoolExecutor | None,
    run: TaskRun,
    tracing: Tracing | None = None,
    trace: Mapping[str, str] | None = None,
) -> Any:
    """Run one attempt of `defn`, raising `TaskTimeout` if it outlives `limit` seconds.

    A sync function runs in `executor` with a copy of the caller's context variables. A timeout
    cannot interrupt it (Python threads cannot be killed): the attempt fails and frees its slot
    while the thread finishes in the background. `run` is :func:`current_task` meanwhile; with
    `tracing`, the attempt runs in a span in the trace of `trace`, the enqueue's context.
    """
    token = _current.set(run)
    try:
        if tracing is None:
            return await _call(defn, args, kwargs, limit, executor)
        with tracing.running(defn.name, run.id, run.attempt, trace) as span:
            try:
                return await _call(defn, args, kwargs, limit, executor)
            finally:
                if run.attempt is not None:  # known by now in a Redis worker, most often
                    span.set_attribute("joey.task.attempt", run.attempt)
    finally:
        _current.reset(token)


async def _call(
    defn: TaskDef,
    args: tuple[Any, ...] | list[Any],
    kwargs: dict[str, Any],
    limit: float | None,
    executor: ThreadPoolExecutor | None,
) -> Any:
    if defn.is_async:
        awaitable: Any = defn.fn(*args, **kwargs)
    else:
        if executor is None:  # pragma: no cover - start() opens it
            raise TasksNotRunning("the task backend is not started")
        call = functools.partial(contextvars.copy_context().run, defn.fn, *args, **kwargs)
        awaitable = asyncio.get_running_loop().run_in_executor(executor, call)
    if limit is None:
        return await awaitable
    deadline = asyncio.timeout(limit)
    try:
        async with deadline:
            return await awaitable
    except TimeoutError:
        if not deadline.expired():  # the task raised TimeoutError itself: report it as is
            raise
        raise TaskTimeout(f"{defn.name} did not finish within {limit:g}s") from None


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]], *, every: float = 0.1) -> None:
    """Cancel `tasks` and wait until all are done, cancelling again any still running
    after `every` seconds.

    One `cancel()` is not always enough on Python 3.11: `asyncio.wait_for` loses a
    cancellation that arrives in the same loop iteration as the operation it waits for
    completes (CPython gh-86296, fixed in 3.12), and redis-py sends every command through
    `wait_for` when `socket_timeout` is set, which it is by default. A loop whose
    cancellation was lost ran on, and a `stop()` that awaited it after one `cancel()`
    never returned (the worker ignored SIGTERM). Task code may hit the same bug.
    """
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=every)
