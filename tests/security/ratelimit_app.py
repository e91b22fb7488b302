"""An app limited through Redis, for tests under uvicorn with several workers.

Environment: REDIS_URL, REDIS_TIMEOUT (seconds), LIMIT (requests per window), WINDOW
(seconds), FAIL_OPEN (1/0), POLICY (fixed, sliding, token_bucket), PREFIX (a key prefix
of the test's own).
"""

from __future__ import annotations

import os

from joey import App
from joey._redis import from_url
from joey.params.markers import Security
from joey.ratelimit import RateLimit, RedisRateLimits

# REDIS_TIMEOUT: short for the outage tests; the others give a loaded machine time
_timeout = float(os.environ.get("REDIS_TIMEOUT", "0.5"))
redis = from_url(os.environ["REDIS_URL"], socket_timeout=_timeout,  # a cluster's URL too
                 socket_connect_timeout=_timeout)
limit = RateLimit(
    int(os.environ.get("LIMIT", "10")), float(os.environ.get("WINDOW", "60")),
    policy=os.environ.get("POLICY", "fixed"),  # type: ignore[arg-type]
    backend=RedisRateLimits(redis, prefix=os.environ.get("PREFIX", "t:"), timeout=_timeout),
    fail_open=os.environ.get("FAIL_OPEN", "1") == "1", retry_after=3, name="shared",
)
app = App(dependencies=[Security(limit)])


@app.get("/")
async def index() -> dict[str, int]:
    return {"pid": os.getpid()}


async def asgi(scope, receive, send):  # type: ignore[no-untyped-def]
    """The app, with every response (the 429s too) naming the worker that sent it."""

    async def send_with_pid(message):  # type: ignore[no-untyped-def]
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []),
                                  (b"x-pid", str(os.getpid()).encode())]
        await send(message)

    await app(scope, receive, send_with_pid)
