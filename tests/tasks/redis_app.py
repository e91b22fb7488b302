"""A real `joey.App` with Redis tasks, for `joey worker tests.tasks.redis_app:app`.

The web side (the test process) builds its own with `make_app(url, prefix, consume=False)`;
worker subprocesses import `app`, built from the environment. Both register the same tasks.
"""

from __future__ import annotations

import asyncio
import logging
import os

from joey import App, Request
from joey.tasks import RedisTasks

log = logging.getLogger("tests.redis_app")


def make_app(url: str, prefix: str, *, consume: bool) -> App:
    app = App(tasks=RedisTasks(url, prefix=prefix, consume=consume, shutdown_timeout=2))

    @app.on_startup
    async def open_pool() -> None:
        # Slow on purpose: a task enqueued before the worker started must still find the pool.
        await asyncio.sleep(0.2)
        app.state.pool = f"pool of {os.getpid()}"
        log.info("startup hook: pool opened")

    @app.on_shutdown
    async def close_pool() -> None:
        log.info("shutdown hook: pool closed")

    @app.task(name="greet")
    async def greet(name: str) -> dict[str, object]:
        return {"hello": name, "pid": os.getpid(), "pool": app.state.pool}

    @app.post("/greet/{name}", status_code=202)
    async def enqueue_greet(request: Request, name: str) -> dict[str, str]:
        return {"id": await request.app.tasks.enqueue(greet, name)}

    @app.get("/tasks/{task_id}")
    async def task_status(request: Request, task_id: str, wait: bool = False) -> dict[str, object]:
        if wait:
            async with asyncio.timeout(20):
                info = await request.app.tasks.wait(task_id)
        else:
            found = await request.app.tasks.status(task_id)
            if found is None:
                return {"state": None}
            info = found
        return {"state": info.state.value, "result": info.result, "attempts": info.attempts}

    return app


app = make_app(
    os.environ.get("JOEY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
    os.environ.get("JOEY_TEST_PREFIX", "joey:tasks"),
    consume=False,  # as in a web process: the worker command consumes anyway
)
