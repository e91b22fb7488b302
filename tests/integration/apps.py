"""Small apps for lifespan tests under a real server."""

from __future__ import annotations

import asyncio

from joey import App, Request

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
