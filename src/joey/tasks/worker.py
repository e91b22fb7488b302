"""The worker process: run a `RedisTasks` backend's consumer until SIGTERM or SIGINT.

`joey worker module:app` imports the app (a `joey.App`, anything with a `.tasks` backend, or
the backend itself) and starts its backend in consuming mode. A `joey.App` gets its whole
startup first (hooks, lifespan context, app-scoped dependencies, then the backend, started by
that same startup) and its shutdown at the end, so tasks can use what startup made. On the first
SIGTERM/SIGINT the worker stops gracefully (running tasks get `shutdown_timeout`, then are handed
back to the queue); a second signal cancels the graceful stop.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING, Any

from .base import TaskBackend

if TYPE_CHECKING:
    from joey.app import App

__all__ = ["configure_logging", "find_backend", "load_target", "run_worker"]

logger = logging.getLogger("joey.tasks")


def load_target(spec: str) -> Any:
    """Import ``"package.module:attribute"`` (attribute defaults to ``app``; dots allowed)."""
    module_name, _, attr = spec.partition(":")
    if not module_name:
        raise ValueError(f"expected 'module:attribute', got {spec!r}")
    obj: Any = importlib.import_module(module_name)
    for part in (attr or "app").split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"{module_name!r} has no attribute {attr or 'app'!r}") from None
    return obj


def find_backend(target: Any) -> TaskBackend:
    """The task backend of `target`: its `.tasks`, or `target` itself if it is a backend."""
    backend = target if isinstance(target, TaskBackend) else getattr(target, "tasks", None)
    if not isinstance(backend, TaskBackend):
        raise TypeError(f"{target!r} has no task backend: expected an object with `.tasks`")
    from .redis import RedisTasks  # here, so `redis` is only needed to run workers

    if not isinstance(backend, RedisTasks):
        raise TypeError(
            f"a worker process needs a RedisTasks backend, the app has {type(backend).__name__}: "
            "in-process tasks run inside the web process itself"
        )
    return backend


async def run_worker(
    backend: TaskBackend, stop: asyncio.Event | None = None, *, app: App | None = None
) -> None:
    """Consume tasks until `stop` is set or the process gets SIGTERM/SIGINT, then stop.

    With `app` (the `joey.App` whose backend this is), ``await app.startup()`` starts the
    backend, consuming, after the app's own startup steps, and ``await app.shutdown()`` stops
    it before the app's shutdown steps undo them.

    <!-- docs-test: fragment: a worker runs until SIGTERM, against a Redis server -->
    Example::

        asyncio.run(run_worker(app.tasks, app=app))
    """
    from .redis import RedisTasks

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    stopping = False

    def on_signal(signum: int) -> None:
        nonlocal stopping
        if stopping and main is not None:
            logger.warning("second %s: cancelling the graceful stop", signal.Signals(signum).name)
            main.cancel()
            return
        stopping = True
        logger.info("%s received: stopping the worker", signal.Signals(signum).name)
        stop.set()

    signals = (signal.SIGTERM, signal.SIGINT)
    for signum in signals:
        loop.add_signal_handler(signum, on_signal, signum)
    app_started = False
    try:
        if app is not None:
            if isinstance(backend, RedisTasks):
                # The app's startup starts the backend, last; make that start the consuming
                # one, so that tasks never run before the startup steps they may rely on.
                backend.consume = True
            await app.startup()
            app_started = True
        if isinstance(backend, RedisTasks):
            await backend.start(consume=True)  # no-op when the app's startup started it
            if not backend.consuming:
                raise RuntimeError(
                    "the task backend was started without consuming before the worker could "
                    "start it (by a startup hook?): let the app's startup start it"
                )
        else:
            await backend.start()
        logger.info(
            "worker [%s] started (pid %d, max_concurrency=%d, tasks: %s)",
            getattr(backend, "consumer", "?"),
            os.getpid(),
            backend.max_concurrency,
            ", ".join(sorted(backend.registered)) or "none",
        )
        await stop.wait()
    finally:
        try:
            if app_started:
                assert app is not None
                await app.shutdown()  # stops the backend first, then undoes the startup
        finally:
            try:
                await backend.stop()  # idempotent: a no-op after the app's shutdown
            finally:
                for signum in signals:
                    loop.remove_signal_handler(signum)
    logger.info("worker stopped")


def configure_logging(level: str) -> None:
    """Plain timestamped lines on stderr, unless the app configured logging itself."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
    else:
        root.setLevel(level.upper())
