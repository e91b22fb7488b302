"""The backend contract: what every task backend offers (`TaskBackend`: registration, enqueue,
per-call options, status, lifecycle) and what a backend supplies (the queue: how a task is
stored, handed to a worker slot and recorded).

The pieces both backends must get the same way live beside it, so the two cannot drift apart:
a task's definition and backoff (`definition`), the errors and their text (`errors`), and how
one attempt runs (`attempt`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, Protocol, Self, TypeVar, overload

from .definition import DEFAULT_BACKOFF, Backoff, TaskDef, check_timeout, source_of
from .errors import TaskNotRegistered
from .periodic import make_schedule
from .state import TaskInfo
from .unawaited import Enqueueing

if TYPE_CHECKING:
    from joey.metrics.families import TaskMetrics
    from joey.observability.tracing import Tracing

__all__ = ["EnqueueOptions", "TaskBackend", "TaskDecorator", "WhenFull", "periodic_tasks"]

P = ParamSpec("P")
F = TypeVar("F", bound=Callable[..., Any])
WhenFull = Literal["wait", "raise"]


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
        check_timeout(timeout)
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
    def enqueue(
        self, task: Callable[P, Any], /, *args: P.args, **kwargs: P.kwargs
    ) -> Enqueueing: ...
    @overload
    def enqueue(self, task: str, /, *args: Any, **kwargs: Any) -> Enqueueing: ...
    def enqueue(self, task: Callable[..., Any] | str, /, *args: Any, **kwargs: Any,
                ) -> Enqueueing:
        """Enqueue `task` with these options; ``await`` it for the task id."""
        return Enqueueing(lambda: self._backend._enqueue(task, args, kwargs, self),
                          f"app.tasks.options(...).enqueue({_task_name(task)}, ...)")


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
        #: where runs are reported (``App(metrics=...)`` sets it); None: nowhere
        self._metrics: TaskMetrics | None = None
        self._tracing: Tracing | None = None

    def report_to(self, metrics: TaskMetrics) -> None:
        """Report enqueues, attempts and their outcomes to ``metrics`` (an app with
        ``metrics=`` calls this for its task queue)."""
        self._metrics = metrics
        metrics.watch(self)

    def trace_with(self, tracing: Tracing | None) -> None:
        """Trace enqueues and runs (``App(tracing=...)`` calls this for its backend): each
        enqueue is a span whose context the task keeps, each run a span in that trace (see
        :meth:`joey.observability.tracing.Tracing.running`)."""
        self._tracing = tracing

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
        check_timeout(timeout)
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")

        def register(func: F) -> F:
            if not callable(func):
                raise TypeError(f"@task expects a function, got {func!r}")
            task_name = name or f"{func.__module__}.{func.__qualname__}"
            try:
                schedule = make_schedule(cron, every)
            except ValueError as exc:
                raise ValueError(f"task {task_name!r}, {source_of(func)}: {exc}") from None
            known = self._by_name.get(task_name)
            if known is not None and known.fn is not func:
                raise ValueError(
                    f"task name {task_name!r} is already used by {known.source}; "
                    f"{source_of(func)} needs another name: @task(name=...)"
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
                f"{source_of(task)} is not a registered task: decorate it with @app.task"
            )
        return defn

    # -- enqueueing ---------------------------------------------------------------------------

    @overload
    def enqueue(
        self, task: Callable[P, Any], /, *args: P.args, **kwargs: P.kwargs
    ) -> Enqueueing: ...
    @overload
    def enqueue(self, task: str, /, *args: Any, **kwargs: Any) -> Enqueueing: ...
    def enqueue(self, task: Callable[..., Any] | str, /, *args: Any, **kwargs: Any,
                ) -> Enqueueing:
        """Queue a run of `task` (the registered function, or its name); ``await`` it for the
        task id. Nothing is queued until it is awaited, and a forgotten ``await`` is reported
        (a 500 naming it in a request, see :mod:`joey.tasks.unawaited`), never silent.

        Arguments are passed to the task as given. Per-call options go through `options()`, so
        they never collide with the task's own keyword arguments.

        Example::

            @app.task
            async def send_welcome(user_id: int) -> None: ...

            async def signed_up(user_id: int) -> None:
                task_id = await app.tasks.enqueue(send_welcome, user_id)
        """
        return Enqueueing(lambda: self._enqueue(task, args, kwargs, None),
                          f"app.tasks.enqueue({_task_name(task)}, ...)")

    async def _enqueue(
        self,
        task: Callable[..., Any] | str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        opts: EnqueueOptions | None,
    ) -> str:
        tracing = self._tracing
        if tracing is None:
            return await self._submit(task, args, kwargs, opts, None)
        defn = self._by_name.get(task) if isinstance(task, str) else self._by_fn.get(task)
        name = defn.name if defn is not None else getattr(task, "__qualname__", str(task))
        with tracing.enqueueing(name) as (span, carrier):
            task_id = await self._submit(task, args, kwargs, opts, carrier)
            span.set_attribute("messaging.message.id", task_id)
            return task_id

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
        trace: dict[str, str] | None,
    ) -> str:
        """Queue the task; ``trace``: the enqueue's trace context, for its runs (or None)."""

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

    # -- the thread pool of sync tasks (attempts run with `attempt.call_task`) -----------------

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


def _task_name(task: Callable[..., Any] | str) -> str:
    return repr(task) if isinstance(task, str) else str(getattr(task, "__name__", task))


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
