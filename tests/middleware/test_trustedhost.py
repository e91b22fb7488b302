from __future__ import annotations

import pytest

from joey.middleware import TrustedHostMiddleware
from joey.types import Receive, Scope, Send

from .helpers import client, drive, http_scope, text_app


def trusted(*hosts: str) -> TrustedHostMiddleware:
    return TrustedHostMiddleware(text_app("ok"), allowed_hosts=list(hosts))


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("example.com", True),
        ("EXAMPLE.com:8443", True),
        ("example.com.", True),
        ("api.example.com", True),
        ("a.b.example.com", True),
        ("evilexample.com", False),
        ("example.com.evil.net", False),
        ("other.org", False),
        ("[::1]:8000", True),
        ("[::1", False),
        ("127.0.0.1:9", False),
        (":80", False),
    ],
)
async def test_hosts(host: str, allowed: bool) -> None:
    async with client(trusted("example.com", "*.example.com", "[::1]")) as c:
        r = await c.get("/", headers={"host": host})
    assert r.status_code == (200 if allowed else 400)
    if not allowed:
        assert r.text == "Invalid host header"


async def test_wildcard_does_not_cover_the_apex() -> None:
    async with client(trusted("*.example.com")) as c:
        r = await c.get("/", headers={"host": "example.com"})
    assert r.status_code == 400


@pytest.mark.parametrize(
    "headers",
    [[], [(b"host", b"example.com"), (b"host", b"example.com")]],
    ids=["missing", "repeated"],
)
async def test_missing_or_repeated_host_is_refused(headers: list[tuple[bytes, bytes]]) -> None:
    start, _ = await drive(trusted("example.com"), http_scope(headers=headers))
    assert start["status"] == 400


async def test_star_allows_anything_even_no_host() -> None:
    start, _ = await drive(trusted("*"), http_scope(headers=[]))
    assert start["status"] == 200


async def test_websocket_with_bad_host_is_closed_before_accept() -> None:
    called: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        called.append(scope)

    middleware = TrustedHostMiddleware(app, allowed_hosts=["example.com"])
    sent = await drive(middleware, http_scope(kind="websocket", headers=[(b"host", b"evil")]))
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": "Invalid host"}]
    await drive(middleware, http_scope(kind="websocket", headers=[(b"host", b"example.com")]))
    await drive(middleware, {"type": "lifespan"})
    assert len(called) == 2


def test_configuration_errors() -> None:
    with pytest.raises(ValueError, match="wildcard"):
        trusted("api.*.example.com")
    with pytest.raises(ValueError, match="at least one"):
        trusted()
    with pytest.raises(TypeError, match="list"):
        TrustedHostMiddleware(text_app(), allowed_hosts="example.com")


def test_is_allowed_is_public_for_reuse() -> None:
    middleware = trusted("example.com")
    assert middleware.is_allowed(b"example.com:80")
