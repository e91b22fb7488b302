"""One app with every built-in that keeps something per request or per connection, served by a
real server in the soak and idle tests, and run by ``joey worker tests.soak.app:app``.

Sessions in Redis, channels over Redis (pub/sub or Streams) to a WebSocket and to SSE, Redis
tasks enqueued and run, a Redis rate limit, plain routes, JSON and a multipart upload. Set up
by the environment:

- ``SOAK_REDIS_URL`` (required), ``SOAK_PREFIX``: where every Redis key lives;
- ``SOAK_CHANNELS``: ``streams`` (default) or ``pubsub``;
- ``SOAK_CONSUME``: ``1`` (default) runs tasks in the server process too, ``0`` leaves them to
  a worker;
- ``SOAK_LEAK``: any of ``task``, ``fd``, ``memory`` (comma-separated) makes ``GET /plain``
  leak one asyncio task, one file descriptor, 256 KiB per request: the soak's own proof that
  it notices each.

``GET /_stats`` reports what only the process can see (its asyncio tasks); the tests read
memory and file descriptors from ``/proc``.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Annotated, Any

import msgspec
from redis.asyncio import Redis

from joey import App, Middleware, Request, Router, UploadFile, WebSocket
from joey.channels import Channels, RedisPubSubBackend, RedisStreamsBackend
from joey.middleware import RedisStore, SessionMiddleware
from joey.ratelimit import RateLimit, RedisRateLimits
from joey.requests import HTTPConnection
from joey.security import Security
from joey.sse import EventSourceResponse
from joey.tasks import RedisTasks

URL = os.environ["SOAK_REDIS_URL"]
PREFIX = os.environ.get("SOAK_PREFIX", "soak")
LEAK = set(os.environ.get("SOAK_LEAK", "").split(","))

backend = (RedisPubSubBackend(URL, prefix=f"{PREFIX}:ch")
           if os.environ.get("SOAK_CHANNELS") == "pubsub"
           else RedisStreamsBackend(URL, prefix=f"{PREFIX}:ch", max_len=100))
tasks = RedisTasks(URL, prefix=f"{PREFIX}:tasks", consume=os.environ.get("SOAK_CONSUME") != "0",
                   visibility_timeout=30)
redis = Redis.from_url(URL)  # sessions and rate limits; connects on first use

app = App(
    tasks=tasks,
    channels=Channels(backend),
    asgi_middleware=[Middleware(SessionMiddleware, secret_key="soak-secret-0123456789abcdef",
                                store=RedisStore(redis, prefix=f"{PREFIX}:session:"))],
)


@app.on_shutdown
async def close_redis() -> None:
    await redis.aclose()


@app.task(name="record")
async def record(n: int) -> dict[str, float]:
    return {"n": n, "began": time.time()}


# -- plain routes, JSON, an upload ---------------------------------------------------------

_leaked: list[Any] = []


@app.get("/plain")
async def plain() -> str:
    if "task" in LEAK:
        _leaked.append(asyncio.get_running_loop().create_task(asyncio.Event().wait()))
    if "fd" in LEAK:
        _leaked.append(os.open(os.devnull, os.O_RDONLY))
    if "memory" in LEAK:
        _leaked.append(b"m" * (256 * 1024))  # written, so resident
    return "ok"


class Item(msgspec.Struct):
    name: str
    tags: list[str] = []


@app.post("/json")
async def echo(item: Item) -> Item:
    return item


@app.post("/upload")
async def upload(request: Request) -> dict[str, int]:
    form = await request.form()
    file = form["file"]
    assert isinstance(file, UploadFile)
    return {"size": len(await file.read())}


# -- sessions ------------------------------------------------------------------------------


@app.post("/login")
async def login(request: Request, name: str) -> dict[str, str]:
    request.session["user"] = name
    return {"user": name}


@app.get("/me")
async def me(request: Request) -> dict[str, str | None]:
    return {"user": request.session.get("user")}


# -- a rate limit: 5 per minute for each ?who= ---------------------------------------------


def who(connection: HTTPConnection) -> str:
    return connection.query_params.get("who") or "anonymous"


# A window of 11 days: windows are aligned on the clock, and a round that straddled a boundary
# of a short one (a loaded machine) would get a fresh budget half-way through its seven hits.
limited = RateLimit(5, 1_000_000, backend=RedisRateLimits(redis, prefix=f"{PREFIX}:rate:"),
                    key=who, name="soak")


@app.get("/limited", dependencies=[Security(limited)])
async def limited_route() -> str:
    return "allowed"


# -- channels: publish, and subscribe over a WebSocket or SSE --------------------------------

rooms = Router(prefix="/rooms")


@rooms.post("/{room}")
async def publish(room: str, text: Annotated[str, msgspec.Meta(max_length=1000)],
                  channels: Channels) -> dict[str, str]:
    await channels.publish(room, text)
    return {"published": text}


@rooms.get("/{room}/events")
async def events(room: str, request: Request, channels: Channels) -> EventSourceResponse:
    return await channels.event_source(request, room)


@rooms.websocket("/{room}/ws")
async def room_socket(websocket: WebSocket, room: str, channels: Channels) -> None:
    await websocket.accept()
    async with channels.subscribe(room) as subscription:
        async for text in channels.relay(websocket, subscription):
            await channels.publish(room, text)


@rooms.get("/{room}/subscribers")
async def subscribers(room: str, channels: Channels) -> int:
    return channels.subscribers(room)


app.include_router(rooms)


# -- tasks ---------------------------------------------------------------------------------


@app.post("/tasks")
async def enqueue(n: int) -> str:
    return await app.tasks.enqueue(record, n)


@app.get("/tasks/{task_id}")
async def task_state(task_id: str) -> dict[str, Any]:
    info = await app.tasks.status(task_id)
    return {"state": None if info is None else info.state.value}


# -- what the process holds ------------------------------------------------------------------


@app.get("/_stats")
async def stats() -> dict[str, int]:
    return {"tasks": len(asyncio.all_tasks()), "pid": os.getpid()}
