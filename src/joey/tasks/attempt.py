"""Running one attempt of a task, the same way in every backend: an async function on the event
loop, a sync one in the backend's own thread pool, either bounded by its timeout; and cancelling
the asyncio tasks a backend must see end.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .definition import TaskDef
from .errors import TasksNotRunning, TaskTimeout

__all__ = ["call_task", "cancel_and_wait"]


async def call_task(
    defn: TaskDef,
    args: tuple[Any, ...] | list[Any],
    kwargs: dict[str, Any],
    limit: float | None,
    executor: ThreadPoolExecutor | None,
) -> Any:
    """Run one attempt of `defn`, raising `TaskTimeout` if it outlives `limit` seconds.

    A sync function runs in `executor` with a copy of the caller's context variables. A timeout
    cannot interrupt it (Python threads cannot be killed): the attempt fails and frees its slot
    while the thread finishes in the background.
    """
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
