"""The app that worker subprocesses import in the Redis tests (`joey worker worker_app:app`).

It exposes `app.tasks` like a Joey App would; settings come from the environment.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import types

import redis.asyncio as aioredis

from joey._redis import from_url
from joey.tasks import Backoff, RedisTasks

URL = os.environ["JOEY_TEST_REDIS_URL"]
PREFIX = os.environ["JOEY_TEST_PREFIX"]

tasks = RedisTasks(
    URL,
    prefix=PREFIX,
    consume=True,
    max_concurrency=int(os.environ.get("JOEY_TEST_CONCURRENCY", "4")),
    visibility_timeout=float(os.environ.get("JOEY_TEST_VISIBILITY", "1.5")),
    shutdown_timeout=float(os.environ.get("JOEY_TEST_SHUTDOWN", "2")),
    max_deliveries=int(os.environ.get("JOEY_TEST_MAX_DELIVERIES", "5")),
)
app = types.SimpleNamespace(tasks=tasks)
_clients: dict[int, aioredis.Redis] = {}


def _redis() -> aioredis.Redis:
    # One client per worker process (its single event loop).
    client = _clients.get(os.getpid())
    if client is None:
        client = _clients[os.getpid()] = from_url(URL)  # type: ignore[assignment]
    return client


@tasks.task(name="pid")
async def pid(tag: str) -> list[object]:
    return [tag, os.getpid()]


@tasks.task(name="hang_first_time", retries=3, backoff=Backoff(base=0.01))
async def hang_first_time(key: str) -> int:
    """Announces its start; the first run ever hangs (to be killed), later runs return."""
    client = _redis()
    runs = await client.incr(f"{PREFIX}:{key}:runs")
    await client.rpush(f"{PREFIX}:{key}:started", os.getpid())
    if runs == 1:
        await asyncio.sleep(3600)
    return os.getpid()


@tasks.task(name="hang")
async def hang(key: str) -> None:
    await _redis().rpush(f"{PREFIX}:{key}:started", os.getpid())
    await asyncio.sleep(3600)


@tasks.task(name="mark", retries=5, backoff=Backoff(base=0.01))
async def mark(i: int) -> int:
    await asyncio.sleep(0.02)
    await _redis().sadd(f"{PREFIX}:done", i)
    await _redis().rpush(f"{PREFIX}:marks", i)
    return i


@tasks.task(name="mark_once")
async def mark_once(i: int) -> int:
    """Default settings (retries=0); records each completed run in a file of this worker's
    (not in Redis, which the restart test takes away mid-run)."""
    await asyncio.sleep(0.01)
    runlog = os.environ.get("JOEY_TEST_RUNLOG")
    if runlog:
        # A tiny local append, blocking on purpose: it must not depend on Redis.
        with open(os.path.join(runlog, f"{os.getpid()}.log"), "a") as out:  # noqa: ASYNC230
            out.write(f"{i}\n")
    else:
        await _redis().rpush(f"{PREFIX}:marks", i)
    return i


@tasks.task(name="suicide")
async def suicide(key: str) -> None:
    """Kills its own worker, every time: a task that can never report back."""
    await _redis().rpush(f"{PREFIX}:{key}:started", os.getpid())
    os.kill(os.getpid(), signal.SIGKILL)


if os.environ.get("JOEY_TEST_PERIODIC"):

    @tasks.task(name="tick", every=float(os.environ["JOEY_TEST_PERIODIC"]))
    async def tick() -> None:
        await _redis().rpush(f"{PREFIX}:ticks", f"{time.time()!r} {os.getpid()}")
