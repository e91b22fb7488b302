"""``joey run --server granian``: Granian (the ``granian`` extra) serving a Joey app, each worker
running the app's lifespan, with Joey's shutdown where Granian lets us have it.

Granian runs every worker's ASGI lifespan (startup before the first request, shutdown after
the last), replaces a crashed worker when asked, and reloads with ``--reload``. What differs
from ``joey run`` under uvicorn is shutdown: on SIGTERM/SIGINT a Granian worker stops its
server at once, dropping open WebSockets without a close frame and cutting open streams, and
only then runs the lifespan shutdown. So each worker Joey starts gets its signal handling from
:func:`_drain_first`: on the first signal the app ends its open streams (an SSE stream sends
its last event and a ``retry:`` hint) and closes its WebSockets with 1001, waiting up to
``app.shutdown_timeout``, and only then is Granian told to stop. Unlike under uvicorn, the
listening socket stays open during that wait (Granian has no way to stop accepting first),
and running requests get no ``timeout_graceful_shutdown``: Granian decides how long they
may take. This relies on Granian calling ``granian._signals.set_loop_signals`` in its
workers, which is checked: without it, Granian's own shutdown is kept, with a warning.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Any

logger = logging.getLogger("joey")


def serve(target: str, *, host: str, port: int, workers: int, reload: bool, app_dir: str,
          log_level: str) -> int:
    """Serve ``module:attribute`` with Granian until stopped; the exit status."""
    try:
        from granian import Granian
        from granian.constants import Interfaces
        from granian.log import LogLevels
    except ImportError:
        raise RuntimeError("joey run --server granian needs Granian: "
                           "pip install 'joey[granian]'") from None
    directory = Path(app_dir).resolve()
    import functools

    server = Granian(
        target, address=host, port=port, interface=Interfaces.ASGI, workers=workers,
        reload=reload, reload_paths=[directory] if reload else None, working_dir=directory,
        log_level=LogLevels(log_level),
    )
    server.serve(target_loader=functools.partial(_load, app_dir=str(directory)))
    return 0


def _load(target: str, app_dir: str) -> Any:
    """Runs in each Granian worker, before the worker installs its signal handlers: load
    the app and make the worker's shutdown start with the app's (see the module doc)."""
    from joey.cli import load_app

    app = load_app(target, app_dir)
    try:
        import granian._signals as granian_signals

        original = granian_signals.set_loop_signals
    except (ImportError, AttributeError):  # pragma: no cover - another Granian version
        logger.warning("This Granian version offers no hook for Joey's shutdown: open "
                       "WebSockets and streams are cut at shutdown instead of closed.")
        return app
    if hasattr(app, "close_streams") and hasattr(app, "close_websockets"):
        granian_signals.set_loop_signals = (
            lambda loop: _drain_first(loop, app, original))
    return app


def _drain_first(loop: asyncio.AbstractEventLoop, app: Any, original: Any) -> Any:
    """Granian's worker signal event, set only once ``app`` ended its streams and closed
    its WebSockets (1001); a later signal while that runs changes nothing (the wait is
    bounded by ``app.shutdown_timeout``)."""
    event = original(loop)  # Granian's event and handlers; ours replace the handlers
    draining = False

    async def drain() -> None:
        timeout = app.shutdown_timeout
        try:
            await asyncio.gather(app.close_streams(timeout), app.close_websockets(1001, timeout))
        finally:
            event.set()

    def on_signal(*_: Any) -> None:
        nonlocal draining
        if not draining:
            draining = True
            loop.create_task(drain())

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    return event


__all__ = [
    "serve",
]
