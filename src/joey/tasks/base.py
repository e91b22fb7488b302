"""What every task backend shares: registration, per-call options, retries and running one attempt.

A backend (`InMemoryTasks`, `RedisTasks`) subclasses `TaskBackend` and supplies the queue: how a
task is stored, handed to a worker slot and recorded. Everything that must behave the same on both
(the `@task` decorator, option resolution, backoff, timeouts, sync functions in a thread pool, the
error strings) lives here so the two cannot drift apart.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import math
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from types import TracebackType
from typing import Any, Literal, ParamSpec, Protocol, Self, TypeVar, overload

import msgspec

from ..exceptions import ServiceUnavailable
from .periodic import Schedule, make_schedule
from .state import TaskInfo

__all__ = [
    "Backoff",
    "EnqueueOptions",
    "QueueFull",
    "TaskBackend",
    "TaskDef",
    "TaskNotRegistered",
    "TaskTimeout",
    "TasksNotRunning",
    "TasksUnavailable",
]

logger = logging.getLogger("joey.tasks")

P = ParamSpec("P")
F = TypeVar("F", bound=Callable[..., Any])
WhenFull = Literal["wait", "raise"]


class QueueFull(Exception):
    """Raised by `enqueue` when the queue holds `max_queue` tasks and `when_full="raise"`."""


class TasksNotRunning(RuntimeError):
    """Raised by `enqueue` before `start()` or once `stop()` has begun."""


class TasksUnavailable(ServiceUnavailable):
    """Raised by `enqueue` when the queue's store (Redis) is down, frozen or unreachable.

    It is a `joey.ServiceUnavailable`: raised in a handler, the app answers 503 with
    ``Retry-After`` and the client may try again; nothing was queued. `RedisTasks` raises it
    within `enqueue_timeout` seconds (a frozen server never holds a request longer).
    """


class TaskNotRegistered(LookupError):
    """Raised when enqueueing a function or name that no `@task` registered."""


class TaskTimeout(TimeoutError):
    """The error recorded when an attempt runs longer than its `timeout`."""


class Backoff(msgspec.Struct, frozen=True, array_like=True):
    """How long to wait before retry number *n* (1 for the first retry).

    The wait is ``min(max_delay, base * factor ** (n - 1))``, then shortened by a random fraction
    of up to `jitter` (0 = exact, 1 = anywhere between 0 and the full wait) so that tasks that
    failed together do not all retry in the same instant.

    Example::

        @app.task(retries=5, backoff=Backoff(base=1.0, factor=3.0, max_delay=300.0))
        async def sync_account(account_id: int) -> None: ...
    """

    base: float = 0.5
    factor: float = 2.0
    max_delay: float = 60.0
    jitter: float = 0.5

    def delay(self, retry: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number `retry` (counting from 1)."""
        wait = min(self.max_delay, self.base * self.factor ** max(retry - 1, 0))
        return max(0.0, wait * (1.0 - self.jitter * rand()))


DEFAULT_BACKOFF = Backoff()


class TaskDef:
    """A registered task: the function and its default options, built once at registration."""

    __slots__ = ("backoff", "fn", "is_async", "name", "retries", "schedule", "source", "timeout")

    def __init__(
        self,
        fn: Callable[..., Any],
        name: str,
        timeout: float | None,
        retries: int,
        backoff: Backoff,
        schedule: Schedule | None = None,
    ) -> None:
        self.fn = fn
        self.name = name
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        # Decided once here rather than per run: the run path only branches on a bool.
        self.is_async = inspect.iscoroutinefunction(fn)
        self.source = _source_of(fn)
        self.schedule = schedule


class EnqueueOptions:
    """Per-call options, bound to a backend; made by `TaskBackend.options()`.

    Options given here win over the ones given to `@task`; `None` keeps the task's own.
    Use ``timeout=math.inf`` to lift a task's timeout for one call.

    Example::

        @app.task
        async def reindex(user_id: int) -> None: ...

        async def reindex_soon(user_id: int) -> None:
            await app.tasks.options(delay=30, retries=2).enqueue(reindex, user_id)

    With `unique`, a second enqueue with the same key while the first task is queued, waiting
    for a retry or running returns the first task's id and queues nothing; with
    ``replace=True`` it cancels the first one instead, if it has not started, and queues the
    new one (a running one is left to finish).

    <!-- docs-test: continue -->
    Example::

        async def reindex_once(user_id: int) -> None:
            await app.tasks.options(unique=f"reindex:{user_id}").enqueue(reindex, user_id)
    """

    __slots__ = (
        "_backend", "backoff", "delay", "replace", "retries", "timeout", "unique", "when_full",
    )  # fmt: skip

    def __init__(
        self,
        backend: TaskBackend,
        *,
        delay: float | timedelta | None = None,
        timeout: float | None = None,
        retries: int | None = None,
        backoff: Backoff | None = None,
        when_full: WhenFull | None = None,
        unique: str | None = None,
        replace: bool = False,
    ) -> None:
        if isinstance(delay, timedelta):
            delay = delay.total_seconds()
        if delay is not None and delay < 0:
            raise ValueError(f"delay must be >= 0, got {delay}")
        if retries is not None and retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        _check_timeout(timeout)
        if unique is not None and not unique:
            raise ValueError("unique must be a non-empty key (or None)")
        if replace and unique is None:
            raise ValueError("replace=True needs a unique key")
        self._backend = backend
        self.delay = delay
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.when_full = when_full
        self.unique = unique
        self.replace = replace

    @overload
    async def enqueue(
        self, task: Callable[P, Any], /, *args: P.args, **kwargs: P.kwargs
    ) -> str: ...
    @overload
    async def enqueue(self, task: str, /, *args: Any, **kwargs: Any) -> str: ...
    async def enqueue(self, task: Callable[..., Any] | str, /, *args: Any, **kwargs: Any) -> str:
        """Enqueue `task` with these options; returns the task id."""
        return await self._backend._submit(task, args, kwargs, self)


class TaskBackend(ABC):
    """The API shared by every backend: `task`, `enqueue`, `options`, `status`, `wait`, ...

    A backend is started and stopped by the app's lifespan (or ``async with backend:`` in a
    script). Each instance has its own registry and queue: two apps never share tasks.
    """

    def __init__(self, *, max_concurrency: int, shutdown_timeout: float) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        if shutdown_timeout < 0:
            raise ValueError(f"shutdown_timeout must be >= 0, got {shutdown_timeout}")
        self.max_concurrency = max_concurrency
        self.shutdown_timeout = shutdown_timeout
        self._by_name: dict[str, TaskDef] = {}
        self._by_fn: dict[Callable[..., Any], TaskDef] = {}
        self._executor: ThreadPoolExecutor | None = None

    # -- registration -------------------------------------------------------------------------

    @overload
    def task(self, fn: F, /) -> F: ...
    @overload
    def task(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        timeout: float | None = None,
        retries: int = 0,
        backoff: Backoff | None = None,
        cron: str | None = None,
        every: float | timedelta | None = None,
    ) -> Callable[[F], F]: ...
    def task(
        self,
        fn: F | None = None,
        /,
        *,
        name: str | None = None,
        timeout: float | None = None,
        retries: int = 0,
        backoff: Backoff | None = None,
        cron: str | None = None,
        every: float | timedelta | None = None,
    ) -> F | Callable[[F], F]:
        """Register a function (async or sync) as a task; the function is returned unchanged.

        The default name is ``module.qualname``; give `name` when other processes enqueue it by
        name. `timeout` is per attempt, in seconds; `retries` is the number of extra attempts
        after a failure, spaced by `backoff`. `cron` (``"*/5 * * * *"``, in UTC) or `every`
        (seconds or a timedelta) makes it a periodic task: while the backend consumes, it is
        enqueued (without arguments) once per tick, by exactly one process.

        Example::

            @app.task
            async def send_welcome(user_id: int) -> None: ...

            @app.task(name="reports.build", timeout=60, retries=3)
            def build_report(day: str) -> str:  # sync: runs in the thread pool
                return f"report of {day}"

            @app.task(name="cleanup", cron="0 3 * * *")
            async def cleanup() -> None: ...

            @app.task(name="heartbeat", every=30)
            async def heartbeat() -> None: ...
        """
        _check_timeout(timeout)
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")

        def register(func: F) -> F:
            if not callable(func):
                raise TypeError(f"@task expects a function, got {func!r}")
            task_name = name or f"{func.__module__}.{func.__qualname__}"
            try:
                schedule = make_schedule(cron, every)
            except ValueError as exc:
                raise ValueError(f"task {task_name!r}, {_source_of(func)}: {exc}") from None
            known = self._by_name.get(task_name)
            if known is not None and known.fn is not func:
                raise ValueError(
                    f"task name {task_name!r} is already used by {known.source}; "
                    f"{_source_of(func)} needs another name: @task(name=...)"
                )
            defn = TaskDef(
                func, task_name, timeout, retries, backoff or DEFAULT_BACKOFF, schedule
            )
            self._by_name[task_name] = defn
            self._by_fn[func] = defn
            return func

        return register if fn is None else register(fn)

    @property
    def registered(self) -> dict[str, TaskDef]:
        """The registered tasks by name (a copy)."""
        return dict(self._by_name)

    def _lookup(self, task: Callable[..., Any] | str) -> TaskDef | None:
        defn = self._by_name.get(task) if isinstance(task, str) else self._by_fn.get(task)
        if defn is None and not isinstance(task, str):
            raise TaskNotRegistered(
                f"{_source_of(task)} is not a registered task: decorate it with @app.task"
            )
        return defn

    # -- enqueueing ---------------------------------------------------------------------------

    @overload
    async def enqueue(
        self, task: Callable[P, Any], /, *args: P.args, **kwargs: P.kwargs
    ) -> str: ...
    @overload
    async def enqueue(self, task: str, /, *args: Any, **kwargs: Any) -> str: ...
    async def enqueue(self, task: Callable[..., Any] | str, /, *args: Any, **kwargs: Any) -> str:
        """Queue a run of `task` (the registered function, or its name) and return its id.

        Arguments are passed to the task as given. Per-call options go through `options()`, so
        they never collide with the task's own keyword arguments.

        Example::

            @app.task
            async def send_welcome(user_id: int) -> None: ...

            async def signed_up(user_id: int) -> None:
                task_id = await app.tasks.enqueue(send_welcome, user_id)
        """
        return await self._submit(task, args, kwargs, None)

    def options(
        self,
        *,
        delay: float | timedelta | None = None,
        timeout: float | None = None,
        retries: int | None = None,
        backoff: Backoff | None = None,
        when_full: WhenFull | None = None,
        unique: str | None = None,
        replace: bool = False,
    ) -> EnqueueOptions:
        """Options for one call: ``await tasks.options(delay=60).enqueue(fn, *args)``.

        `delay` postpones the first attempt (seconds or a timedelta); `timeout`, `retries` and
        `backoff` override the task's own; `when_full` overrides the backend's queue-full rule;
        `unique` and `replace` make it a unique job (see `EnqueueOptions`).
        """
        return EnqueueOptions(
            self,
            delay=delay,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            when_full=when_full,
            unique=unique,
            replace=replace,
        )

    @abstractmethod
    async def _submit(
        self,
        task: Callable[..., Any] | str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        opts: EnqueueOptions | None,
    ) -> str: ...

    # -- reading state ------------------------------------------------------------------------

    @abstractmethod
    async def status(self, task_id: str) -> TaskInfo | None:
        """The task's current `TaskInfo`, or None if the id is unknown (or its record expired).

        Example::

            async def state_of(task_id: str) -> TaskState | None:
                info = await app.tasks.status(task_id)
                return None if info is None else info.state
        """

    @abstractmethod
    async def wait(self, task_id: str) -> TaskInfo:
        """Wait until the task is SUCCEEDED, DEAD or CANCELLED and return its `TaskInfo`.

        Raises `LookupError` for an unknown id. Bound the wait with `asyncio.timeout`.

        Example::

            @app.task
            async def build_report(day: str) -> str:
                return f"report of {day}"

            async with app.tasks:  # the app starts its tasks itself; a script starts them so
                task_id = await app.tasks.enqueue(build_report, "2024-05-01")
                async with asyncio.timeout(30):
                    info = await app.tasks.wait(task_id)
            assert info.result == "report of 2024-05-01"
        """

    @abstractmethod
    async def dead_letters(self, limit: int = 100) -> list[TaskInfo]:
        """The most recent dead tasks (retries exhausted), newest first."""

    @abstractmethod
    async def requeue(self, task_id: str) -> bool:
        """Give a dead task a fresh set of attempts; False if it is not in the dead-letter list."""

    # -- lifecycle ----------------------------------------------------------------------------

    @abstractmethod
    async def start(self) -> None:
        """Start taking and running tasks. Called by the app at startup; idempotent."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop: refuse new tasks, let running ones finish up to `shutdown_timeout`, then
        cancel them; report what never started. Called by the app at shutdown; idempotent."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- running one attempt ------------------------------------------------------------------

    def _open_executor(self) -> None:
        if self._executor is None:
            # One pool per backend (never the loop's shared default), sized so that every
            # worker slot can hold a thread at once.
            self._executor = ThreadPoolExecutor(
                max_workers=self.max_concurrency, thread_name_prefix="joey-task"
            )

    def _close_executor(self) -> None:
        if self._executor is not None:
            # wait=False: a sync task that outlived its timeout cannot be interrupted; the
            # thread finishes on its own rather than blocking shutdown.
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def _call(
        self,
        defn: TaskDef,
        args: tuple[Any, ...] | list[Any],
        kwargs: dict[str, Any],
        limit: float | None,
    ) -> Any:
        """Run one attempt of `defn`, raising `TaskTimeout` if it outlives `limit` seconds."""
        if defn.is_async:
            awaitable: Any = defn.fn(*args, **kwargs)
        else:
            if self._executor is None:  # pragma: no cover - start() opens it
                raise TasksNotRunning("the task backend is not started")
            call = functools.partial(contextvars.copy_context().run, defn.fn, *args, **kwargs)
            awaitable = asyncio.get_running_loop().run_in_executor(self._executor, call)
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


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds (or None), got {timeout}")


def resolve_timeout(timeout: float | None) -> float | None:
    """`math.inf` means "no timeout"; the run path only sees a number or None."""
    return None if timeout is None or math.isinf(timeout) else timeout


def error_text(exc: BaseException) -> str:
    """The one-line error recorded on a task: ``"ExceptionType: message"``, capped at 2000 chars."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text if len(text) <= 2000 else text[:1997] + "..."


def _source_of(fn: Any) -> str:
    """``name (file:line)`` for error messages, or a repr when the source is unknown."""
    name = getattr(fn, "__qualname__", None) or repr(fn)
    code = getattr(fn, "__code__", None)
    if code is None:
        return name
    return f"{name} ({code.co_filename}:{code.co_firstlineno})"


def periodic_tasks(backend: TaskBackend) -> list[TaskDef]:
    """The tasks of ``backend`` declared with ``cron=`` or ``every=``."""
    return [defn for defn in backend.registered.values() if defn.schedule is not None]


FuncT = TypeVar("FuncT", bound=Callable[..., Any])


class TaskDecorator(Protocol):
    """The type of ``app.task``: a decorator, bare or with options; keeps the signature."""

    @overload
    def __call__(self, fn: FuncT, /) -> FuncT: ...
    @overload
    def __call__(
        self, fn: None = None, /, *, name: str | None = None, timeout: float | None = None,
        retries: int = 0, backoff: Backoff | None = None, cron: str | None = None,
        every: float | timedelta | None = None,
    ) -> Callable[[FuncT], FuncT]: ...
