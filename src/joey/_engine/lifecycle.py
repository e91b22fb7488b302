"""An app's life around its requests: startup and shutdown, and what they start and end.

:class:`Lifecycle` runs the startup steps in the order :mod:`joey.lifespan` describes (mounted
apps, hooks, app-scoped dependencies, the ``lifespan=`` context, channels, the task queue) and
undoes them at shutdown, after ending open streams and WebSockets. It owns what lives as long
as the app rather than one compiled engine: the open connections, the app-scoped values, the
background task queue and the channels (each made on first use unless the app was given
one), the long-running tasks of ``app.spawn``. ``App`` declares, and delegates here.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from joey._engine.connections import OpenConnections
from joey.datastructures import State, bind_state, state_mapping
from joey.describe import describe
from joey.lifespan import LifespanDriver, LifespanFailed, LifespanManager
from joey.types import ASGIApp

if TYPE_CHECKING:
    from joey._engine.compiler import Declarations
    from joey._engine.http import Engine
    from joey.channels import Channels
    from joey.metrics import Metrics
    from joey.observability.tracing import Tracing
    from joey.params.run import AppScopedValues
    from joey.stack import Middleware
    from joey.tasks import TaskBackend
    from joey.types import ASGIApp

#: ``App(lifespan=...)``: ``lifespan(app)`` is an async context manager; a mapping it yields
#: becomes the lifespan state
Lifespan = Callable[[Any], contextlib.AbstractAsyncContextManager[Mapping[str, Any] | None]]


class Starting(Protocol):
    """What startup reads of an app (:class:`joey.App` is one)."""

    @property
    def state(self) -> State: ...
    @property
    def lifespan_context(self) -> Lifespan | None: ...


class Lifecycle:
    """One app's startup, shutdown, and what lives between them (see the module docstring)."""

    def __init__(self, tasks: TaskBackend | None, channels: Channels | None,
                 metrics: Metrics | None = None, tracing: Tracing | None = None) -> None:
        self.manager = LifespanManager()
        self.connections = OpenConnections()
        self._app_values: AppScopedValues | None = None
        self._metrics = metrics
        self._tracing = tracing
        self._tasks = tasks
        self._channels = channels
        if tasks is not None:
            self._observe(tasks)
        if channels is not None:
            self._observe(channels)

    def compile(self, app: Declarations) -> Engine:
        """An engine for ``app``'s declarations as they stand, sharing this app's open
        connections and app-scoped values with every engine compiled before it."""
        # perf: the compiler and the parameter machinery load with the first compile
        from joey._engine.compiler import compile_engine

        # an app with a task queue checks that its handlers await what they enqueue
        return compile_engine(app, self.app_values, self.connections, self._tracing,
                              check_enqueues=self._tasks is not None)

    def stack(self, middleware: Sequence[Middleware], app: ASGIApp) -> ASGIApp:
        """The app's ASGI stack: ``middleware`` around ``app``, the first one outermost, and
        the server span of the app's tracing (if any) around them all."""
        from joey.stack import build_stack

        return build_stack(middleware, app, self._tracing)

    def serving(self, engine: Engine, stack: ASGIApp, innermost: ASGIApp) -> ASGIApp | None:
        """What serves an HTTP scope: the engine straight when the ASGI ``stack`` is only its
        ``innermost`` app (no ASGI middleware, no tracing), else (``None``) the stack; either
        measured when the app has metrics."""
        # perf: without ASGI middleware or tracing, HTTP requests go straight to the engine
        serve = engine.handle_http if stack == innermost else None
        if self._metrics is not None:  # measured outside the ASGI middleware too
            return self._metrics.instrument(engine, serve or stack)
        return serve

    def _observe(self, extension: TaskBackend | Channels) -> None:
        """The app's metrics count, and its tracing follows, its tasks and messages."""
        if self._metrics is not None:
            from joey.channels import Channels

            if isinstance(extension, Channels):
                extension.report_to(self._metrics.channels)
            else:
                extension.report_to(self._metrics.tasks)
        if self._tracing is not None:
            extension.trace_with(self._tracing)

    @property
    def app_values(self) -> AppScopedValues:
        """The values of ``Depends(..., scope="app")``, kept across recompiles."""
        if self._app_values is None:
            from joey.params.run import AppScopedValues

            self._app_values = AppScopedValues()
        return self._app_values

    @property
    def tasks(self) -> TaskBackend:
        if self._tasks is None:
            from joey.tasks import InMemoryTasks

            self._tasks = InMemoryTasks()
            self._observe(self._tasks)
        return self._tasks

    @property
    def channels(self) -> Channels:
        if self._channels is None:
            from joey.channels import Channels

            self._channels = Channels()
            self._observe(self._channels)
            if self.manager.started:  # made after startup: stop them at shutdown all the same
                self.manager.add_undo("channels", self._channels.stop)
        return self._channels

    async def start(self, app: Starting, engine: Engine,
                    lifespan_state: dict[str, Any] | None) -> None:
        """Run every startup step of ``app`` (compiled into ``engine``), once; on a failure,
        undo the steps that ran and raise."""
        manager = self.manager
        if manager.started:
            return
        manager.started = True
        self.connections.reopen_streams()
        if lifespan_state is not None:
            # The lifespan-state extension: the server copies this mapping into every
            # request's scope["state"], so app.state and request.state share it.
            bind_state(app.state, lifespan_state)
        try:
            for mount in engine.mounts:
                driver = LifespanDriver(mount.app, state_mapping(app.state))
                await manager.run_step(f"mounted app at {mount.path or '/'}", driver.startup,
                                       driver.shutdown)
            for router in engine.routers:
                for hook in router.shutdown_hooks:
                    manager.add_undo(f"shutdown hook {describe(hook)}", hook)
            for router in engine.routers:
                for hook in router.startup_hooks:
                    await manager.run_step(f"startup hook {describe(hook)}", hook, None)
            app_values = self.app_values
            manager.add_undo("app-scoped dependencies", app_values.close)
            for plan in engine.app_scoped:
                await manager.run_step(f"app-scoped dependency {describe(plan.func)}",
                                       functools.partial(app_values.get, plan), None)
            context = app.lifespan_context
            if context is not None:
                yielded = await manager.enter_context(f"lifespan {describe(context)}",
                                                      context(app))
                if yielded:
                    for key, value in yielded.items():
                        setattr(app.state, key, value)
            if self._channels is not None:  # before tasks, which may publish
                await manager.run_step("channels", self._channels.start, self._channels.stop)
            if self._tasks is not None:  # started last: tasks may use what startup made
                await manager.run_step("background task queue", self._tasks.start,
                                       self._tasks.stop)
        except BaseException:
            await manager.shutdown()
            raise

    async def stop(self, timeout: float) -> None:  # noqa: ASYNC109
        """End open streams and close WebSockets (1001), each given ``timeout`` seconds, then
        cancel spawned tasks and undo every startup step in reverse order; raise
        :class:`~joey.lifespan.LifespanFailed` naming every step that failed."""
        await asyncio.gather(self.connections.close_streams(timeout),
                             self.connections.close_websockets(1001, timeout))
        failures = await self.manager.shutdown()
        if failures:
            raise LifespanFailed("Shutdown failed: " + "; ".join(failures))
