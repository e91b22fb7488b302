"""All the built-ins stacked on a real Joey App, in the order the docs recommend."""

from __future__ import annotations

import logging

import pytest

from joey import App, Middleware, Request
from joey.middleware import (
    AccessLogMiddleware,
    CompressionMiddleware,
    CORSMiddleware,
    HTTPSRedirectMiddleware,
    RequestIDMiddleware,
    SecurityHeadersMiddleware,
    SessionMiddleware,
    TrustedHostMiddleware,
    get_request_id,
)

from .helpers import client

ORIGIN = "https://app.example.com"


def build() -> App:
    app = App(asgi_middleware=[
        Middleware(RequestIDMiddleware),
        Middleware(AccessLogMiddleware),
        Middleware(TrustedHostMiddleware, allowed_hosts=["api.example.com"]),
        Middleware(HTTPSRedirectMiddleware),
        Middleware(SecurityHeadersMiddleware),
        Middleware(CORSMiddleware, allow_origins=[ORIGIN], allow_credentials=True),
        Middleware(CompressionMiddleware, minimum_size=100),
        Middleware(SessionMiddleware, secret_key="stack-secret", secure=True),
    ])

    @app.get("/visit")
    async def visit(request: Request) -> dict[str, object]:
        count = request.session.get("visits", 0) + 1
        request.session["visits"] = count
        return {"visits": count, "request_id": get_request_id(), "pad": "x" * 200}

    return app


async def test_full_stack(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "joey.access")
    async with client(build(), "https://api.example.com") as c:
        first = await c.get("/visit", headers={"origin": ORIGIN, "accept-encoding": "gzip"})
        second = await c.get("/visit", headers={"x-request-id": "abc-1"})
        missing = await c.get("/nope")
    assert first.json()["visits"] == 1 and second.json()["visits"] == 2
    assert first.headers["content-encoding"] == "gzip"
    assert first.headers["access-control-allow-origin"] == ORIGIN
    assert first.headers["vary"] == "Accept-Encoding, Origin"
    assert "Secure" in first.headers["set-cookie"]
    assert first.headers["strict-transport-security"] == "max-age=31536000"
    assert second.json()["request_id"] == second.headers["x-request-id"] == "abc-1"
    assert missing.status_code == 404
    statuses = [r.__dict__["status_code"] for r in caplog.records if r.name == "joey.access"]
    assert statuses == [200, 200, 404]  # app-wide middleware sees 404s too


async def test_stack_refusals() -> None:
    async with client(build(), "http://api.example.com") as c:
        redirect = await c.get("/visit?a=1")
        bad_host = await c.get("/visit", headers={"host": "evil.example"})
    assert redirect.status_code == 308
    assert redirect.headers["location"] == "https://api.example.com/visit?a=1"
    assert bad_host.status_code == 400


async def test_session_without_middleware_teaches(caplog: pytest.LogCaptureFixture) -> None:
    app = App()

    @app.get("/")
    async def index(request: Request) -> str:
        return str(request.session)

    async with client(app) as c:
        r = await c.get("/")
    assert r.status_code == 500
    assert "request.session needs SessionMiddleware" in caplog.text
