"""The app that worker subprocesses import in the Redis tests (`joey worker worker_app:app`).

It exposes `app.tasks` like a Joey App would; settings come from the environment.
"""

from __future__ import annotations

import asyncio
import os
import types

import redis.asyncio as aioredis

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
)
app = types.SimpleNamespace(tasks=tasks)
_clients: dict[int, aioredis.Redis] = {}


def _redis() -> aioredis.Redis:
    # One client per worker process (its single event loop).
    client = _clients.get(os.getpid())
    if client is None:
        client = _clients[os.getpid()] = aioredis.Redis.from_url(URL)
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
