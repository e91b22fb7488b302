"""Small apps for tests under a real server: lifespan, disconnects, shutdown, serving."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

from joey import App, Request, StreamingResponse, WebSocket
from joey.sse import EventSourceResponse, ServerSentEvent

ready = App()
_started: list[str] = []


@ready.on_startup
async def slow_startup() -> None:
    await asyncio.sleep(0.5)  # a request served before this finished would see no marker
    _started.append("yes")


@ready.get("/")
async def index() -> dict[str, list[str]]:
    return {"started": _started}


failing = App()


@failing.on_startup
async def connect_to_database() -> None:
    raise ConnectionError("database at 127.0.0.1:1 refused the connection")


watcher = App()
_watch_log: list[str] = []


@watcher.post("/long")
async def long_poll(request: Request) -> str:
    body = await request.body()  # the body is read first; is_disconnected must not lose it
    for _ in range(1000):  # bounded: at most ~10 s
        if await request.is_disconnected():
            _watch_log.append(f"client left after sending {len(body)} bytes")
            return "gone"
        await asyncio.sleep(0.01)
    _watch_log.append("timed out")
    return "done"


@watcher.get("/log")
async def watch_log() -> list[str]:
    return _watch_log


# -- shutdown with open streams, and serving in several processes ---------------------------
# Each process appends what happened to the file named by JOEY_TEST_LOG ("<pid> <event>").

streams = App(shutdown_timeout=5)


def _record(event: str) -> None:
    path = os.environ.get("JOEY_TEST_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(f"{os.getpid()} {event}\n")


@streams.get("/")
async def streams_index() -> dict[str, int]:
    return {"pid": os.getpid()}


@streams.get("/sse")
async def sse() -> EventSourceResponse:
    async def events() -> AsyncIterator[ServerSentEvent]:
        try:
            yield ServerSentEvent("hello", id="1")
            await asyncio.Event().wait()  # a quiet stream: nothing more until shutdown
        finally:
            _record("sse finally")

    return EventSourceResponse(events(), shutdown_event=ServerSentEvent("bye", event="shutdown"),
                               shutdown_retry=3000)


@streams.get("/endless")
async def endless() -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"x" * 1024
                await asyncio.sleep(0.01)
        finally:
            _record("endless finally")

    return StreamingResponse(chunks(), media_type="application/octet-stream")


@streams.websocket("/ws")
async def streams_ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(str(os.getpid()))
    async for text in websocket.iter_text():
        await websocket.send_text(text)


@streams.on_shutdown
def streams_shutdown() -> None:
    _record("shutdown hook")
