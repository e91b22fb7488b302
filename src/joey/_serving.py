"""The uvicorn side of :mod:`joey.server`: a server whose shutdown starts with the app, and the
supervisor that runs several of them. Imported only when serving (uvicorn is an extra).

Every process that serves requests runs a :class:`JoeyServer`: the single process, each
worker, and the reloader's child (which uvicorn starts with the target we give it). Workers
get a supervisor of Joey's own rather than uvicorn's ``Multiprocess``, because that one builds
a plain ``uvicorn.Server`` inside each child and offers no way to choose the class.

Shutdown of one server, in order:

1. stop accepting connections;
2. tell the app: open streams end (an SSE stream sends its last event and a ``retry:``
   hint) and open WebSockets close with 1001, waiting up to ``app.shutdown_timeout``;
3. uvicorn's own shutdown: close idle connections, wait for running requests (at most
   ``timeout_graceful_shutdown``, which defaults to ``app.shutdown_timeout`` here instead of
   forever), then the lifespan shutdown (the app's shutdown hooks).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import multiprocessing
import multiprocessing.process
import os
import signal
import socket
import threading
from types import FrameType
from typing import Any, Protocol

import uvicorn
from uvicorn._subprocess import get_subprocess
from uvicorn.supervisors import ChangeReload

logger = logging.getLogger("uvicorn.error")
#: uvicorn starts its worker processes with spawn: their events come from the same context
_SPAWN = multiprocessing.get_context("spawn")

# The exit status of a server whose app failed to start: uvicorn's, 3 in every supported
# release. Not imported: uvicorn moved the constant from uvicorn.main to uvicorn.config.
STARTUP_FAILURE = 3


class _Drains(Protocol):
    shutdown_timeout: float

    async def close_streams(self, timeout: float = ...) -> None: ...  # noqa: ASYNC109

    async def close_websockets(self, code: int = ..., timeout: float = ...) -> None: ...  # noqa: ASYNC109


class _Flag(Protocol):
    """A ``multiprocessing`` event, as a worker and its supervisor share it."""

    def set(self) -> None: ...

    def is_set(self) -> bool: ...


def _joey_app(app: Any) -> _Drains | None:
    """The Joey App inside uvicorn's wrappers (``.app`` all the way down), if any."""
    while app is not None and not (hasattr(app, "close_streams")
                                   and hasattr(app, "close_websockets")):
        app = getattr(app, "app", None)
    return app  # type: ignore[no-any-return]


class JoeyServer(uvicorn.Server):
    """``uvicorn.Server`` whose shutdown first ends the app's streams and WebSockets.

    ``serving``, when given, is set once the server has started (the app's startup done, the
    socket listening): how a supervisor tells a worker that failed to start from one that
    served and then died."""

    def __init__(self, config: uvicorn.Config, serving: _Flag | None = None) -> None:
        super().__init__(config)
        self.serving = serving

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self.serving is not None:
            self.serving.set()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        app = _joey_app(self.config.loaded_app)
        if app is not None:
            timeout = app.shutdown_timeout
            if self.config.timeout_graceful_shutdown is None:
                self.config.timeout_graceful_shutdown = max(1, math.ceil(timeout))
            for server in self.servers:  # no new connections while the app drains
                server.close()
            await asyncio.gather(app.close_streams(timeout), app.close_websockets(1001, timeout))
        await super().shutdown(sockets)


def run(config: uvicorn.Config) -> int:
    """Serve ``config`` in this process, under the reloader or as ``config.workers``
    processes, until SIGINT or SIGTERM. Returns the exit status (0, or 3 when the app
    failed to start). Quiet on Ctrl+C."""
    if config.should_reload:
        sock = config.bind_socket()
        ChangeReload(config, target=JoeyServer(config).run, sockets=[sock]).run()
        return 0
    if config.workers > 1:
        return _Workers(config, [config.bind_socket()]).run()
    server = JoeyServer(config)
    # uvicorn re-raises the SIGINT it captured once shut down; the shutdown was clean.
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    return 0 if server.started else STARTUP_FAILURE


class _Workers:
    """``config.workers`` server processes sharing one listening socket.

    A worker that dies after it started serving is replaced. One that dies before (its
    import, the app's startup, the TLS setup failed, or it ran into a ``joey.serve`` call
    that is not under ``if __name__ == "__main__":``) failed to start, whatever its exit
    status: every replacement would fail the same way, so all stop, status 3.
    SIGINT or SIGTERM stops every worker with SIGTERM and waits for each to shut down
    gracefully; a second signal kills them.
    """

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket]) -> None:
        self.config = config
        self.sockets = sockets
        self.stopping = threading.Event()
        self.processes: list[multiprocessing.process.BaseProcess] = []
        #: per worker, set by the worker once it serves (see JoeyServer)
        self.serving: list[_Flag] = []

    def _start(self) -> tuple[multiprocessing.process.BaseProcess, _Flag]:
        serving = _SPAWN.Event()
        process = get_subprocess(self.config, JoeyServer(self.config, serving).run,
                                 self.sockets)
        process.start()
        return process, serving

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        if self.stopping.is_set():
            for process in self.processes:
                if process.is_alive():
                    process.kill()
        self.stopping.set()

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._on_signal)
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        status = 0
        try:
            logger.info("Started parent process [%d] with %d workers", os.getpid(),
                        self.config.workers)
            for _ in range(self.config.workers):
                process, serving = self._start()
                self.processes.append(process)
                self.serving.append(serving)
            while not self.stopping.wait(0.2):
                for index, process in enumerate(self.processes):
                    if process.is_alive() or self.stopping.is_set():
                        continue
                    if not self.serving[index].is_set():
                        logger.error("Worker [%s] failed to start (exit status %s; its "
                                     "output above says why); stopping.", process.pid,
                                     process.exitcode)
                        status = STARTUP_FAILURE
                        self.stopping.set()
                        break
                    logger.warning("Worker [%s] exited with %s; starting another.",
                                   process.pid, process.exitcode)
                    self.processes[index], self.serving[index] = self._start()
            for process in self.processes:
                if process.is_alive():
                    process.terminate()
            for process in self.processes:
                process.join()
            logger.info("Stopped parent process [%d]", os.getpid())
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for sock in self.sockets:
                sock.close()
        return status
