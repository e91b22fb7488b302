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
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from joey._engine.connections import OpenConnections
from joey.datastructures import State, bind_state, state_mapping
from joey.describe import describe
from joey.lifespan import LifespanDriver, LifespanFailed, LifespanManager

if TYPE_CHECKING:
    from joey._engine.compiler import Declarations
    from joey._engine.http import Engine
    from joey.channels import Channels
    from joey.params.run import AppScopedValues
    from joey.tasks import TaskBackend

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

    def __init__(self, tasks: TaskBackend | None, channels: Channels | None) -> None:
        self.manager = LifespanManager()
        self.connections = OpenConnections()
        self._app_values: AppScopedValues | None = None
        self._tasks = tasks
        self._channels = channels

    def compile(self, app: Declarations) -> Engine:
        """An engine for ``app``'s declarations as they stand, sharing this app's open
        connections and app-scoped values with every engine compiled before it."""
        # perf: the compiler and the parameter machinery load with the first compile
        from joey._engine.compiler import compile_engine

        # an app with a task queue checks that its handlers await what they enqueue
        return compile_engine(app, self.app_values, self.connections,
                              check_enqueues=self._tasks is not None)

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
        return self._tasks

    @property
    def channels(self) -> Channels:
        if self._channels is None:
            from joey.channels import Channels

            self._channels = Channels()
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
