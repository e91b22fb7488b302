"""A Joey app with Redis-backed sessions, served by uvicorn for test_session_outage.py.

The Redis URL comes from ``JOEY_TEST_REDIS_URL``; the app renders a 503 its own way, so the test
can tell that the app's exception handler answered (not uvicorn, not the default handler).
"""

from __future__ import annotations

import os

from redis.asyncio import Redis

from joey import App, JSONResponse, Middleware, Request, ServiceUnavailable
from joey.middleware import RedisStore, SessionMiddleware

redis = Redis.from_url(os.environ["JOEY_TEST_REDIS_URL"], socket_connect_timeout=1)

app = App(asgi_middleware=[
    Middleware(SessionMiddleware, secret_key="integration-secret-0123456789",
               store=RedisStore(redis), store_timeout=0.5, retry_after=7),
])


@app.on_shutdown
async def close_redis() -> None:
    await redis.aclose()


@app.exception_handler(ServiceUnavailable)
async def unavailable(request: Request, exc: ServiceUnavailable) -> JSONResponse:
    return JSONResponse({"error": "sessions are down", "retry_after": exc.retry_after},
                        status_code=503, headers=exc.headers)


@app.get("/health")
async def health() -> str:
    return "ok"


@app.post("/login")
async def login(request: Request) -> dict[str, str]:
    request.session["user"] = "ada"
    return {"user": "ada"}


@app.get("/me")
async def me(request: Request) -> dict[str, str | None]:
    return {"user": request.session.get("user")}
