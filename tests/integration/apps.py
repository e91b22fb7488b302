"""Small apps for lifespan tests under a real server."""

from __future__ import annotations

import asyncio

from joey import App

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
