"""A Joey app with a RedisCache, served by uvicorn with two worker processes for
test_caching_workers.py (and run in a process of its own, as a worker that dies mid-way).

``JOEY_TEST_REDIS_URL`` and ``JOEY_TEST_PREFIX`` say where; the handlers count their runs in
Redis, so the test counts them across every process. Every answer says which process sent it
(``x-worker``), which the route middleware adds, after the cache.
"""

from __future__ import annotations

import asyncio
import os

from joey import App, CallNext, Request, Response
from joey._redis import from_url
from joey.caching import Caching, RedisCache

PREFIX = os.environ["JOEY_TEST_PREFIX"]
redis = from_url(os.environ["JOEY_TEST_REDIS_URL"])  # a cluster's URL too
# timeout=5: Redis calls on a loaded test machine can take longer than the default 0.5 s
store = RedisCache(redis, prefix=PREFIX + "cache:", timeout=5, lock_timeout=3.0, wait_timeout=30)

app = App()


@app.middleware
async def worker(request: Request, call_next: CallNext) -> Response:
    response = await call_next(request)
    response.headers["x-worker"] = str(os.getpid())
    return response


@app.on_shutdown
async def close_redis() -> None:
    await redis.aclose()


@app.get("/health")
async def health() -> str:
    return "ok"


@app.get("/slow", caching=Caching(store=store, ttl=60))
async def slow(request: Request) -> dict[str, int]:
    """Counts its runs; waits for the test to open the gate (bounded), or for ever with
    ``x-block`` (the process is killed)."""
    run = await redis.incr(PREFIX + "slow-runs")
    await redis.set(PREFIX + "slow-started", run)
    if request.headers.get("x-block"):
        await asyncio.sleep(3600)
    for _ in range(1200):
        if await redis.exists(PREFIX + "go"):
            break
        await asyncio.sleep(0.05)
    return {"run": run}


@app.get("/version", caching=Caching(store=store, cache_control="public, max-age=60",
                                     etag=True, tags=["version"]))
async def version() -> dict[str, int]:
    run = await redis.incr(PREFIX + "version-runs")
    return {"version": int(await redis.get(PREFIX + "version") or 0), "run": run}


@app.post("/version")
async def bump() -> dict[str, int]:
    new = await redis.incr(PREFIX + "version")
    await store.invalidate_tag("version")
    return {"version": new}
