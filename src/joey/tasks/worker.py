"""The worker process: run a `RedisTasks` backend's consumer until SIGTERM or SIGINT.

`joey worker module:app` imports the app (anything with a `.tasks` backend, or the backend
itself), starts its backend in consuming mode, and on the first SIGTERM/SIGINT stops it
gracefully (running tasks get `shutdown_timeout`, then are handed back to the queue). A second
signal cancels the graceful stop.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
import sys
from typing import Any

from .base import TaskBackend, logger

__all__ = ["find_backend", "load_target", "run_worker"]


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


async def run_worker(backend: TaskBackend, stop: asyncio.Event | None = None) -> None:
    """Consume tasks until `stop` is set or the process gets SIGTERM/SIGINT, then stop."""
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
        async def _dbg() -> None:
            await asyncio.sleep(8)
            import io
            for t in asyncio.all_tasks():
                buf = io.StringIO()
                t.print_stack(file=buf)
                print("DBGTASK", t, buf.getvalue(), file=sys.stderr)
            sys.stderr.flush()
        loop.create_task(_dbg())
        logger.info("%s received: stopping the worker", signal.Signals(signum).name)
        stop.set()

    signals = (signal.SIGTERM, signal.SIGINT)
    for signum in signals:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        if isinstance(backend, RedisTasks):
            await backend.start(consume=True)
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
            await backend.stop()
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
