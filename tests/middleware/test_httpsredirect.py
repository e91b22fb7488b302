from __future__ import annotations

import pytest

from joey.middleware import HTTPSRedirectMiddleware
from joey.types import Receive, Scope, Send

from .helpers import client, drive, header, http_scope, text_app


async def test_http_get_redirects_with_path_and_query() -> None:
    async with client(HTTPSRedirectMiddleware(text_app("ok"))) as c:
        r = await c.get("/a%20b/c?x=1&y=%2F", headers={"host": "example.com"})
    assert r.status_code == 308
    assert r.headers["location"] == "https://example.com/a%20b/c?x=1&y=%2F"
    assert r.content == b""


async def test_post_keeps_method_with_308() -> None:
    async with client(HTTPSRedirectMiddleware(text_app("ok"))) as c:
        r = await c.post("/submit", content=b"data", headers={"host": "example.com"})
    assert r.status_code == 308


async def test_https_request_reaches_the_app() -> None:
    async with client(HTTPSRedirectMiddleware(text_app("ok")), "https://example.com") as c:
        r = await c.get("/")
    assert r.text == "ok"


@pytest.mark.parametrize(
    ("host", "https_port", "location"),
    [
        (b"example.com:80", None, b"https://example.com/p"),
        (b"example.com:8080", None, b"https://example.com:8080/p"),
        (b"example.com:8080", 443, b"https://example.com/p"),
        (b"example.com", 8443, b"https://example.com:8443/p"),
        (b"[::1]:80", None, b"https://[::1]/p"),
        (b"[::1]:8000", 8443, b"https://[::1]:8443/p"),
    ],
)
async def test_ports(host: bytes, https_port: int | None, location: bytes) -> None:
    middleware = HTTPSRedirectMiddleware(text_app(), https_port=https_port)
    start, _ = await drive(middleware, http_scope(path="/p", headers=[(b"host", host)]))
    assert header(start, b"location") == location


async def test_root_path_appears_once_and_missing_host_uses_server() -> None:
    middleware = HTTPSRedirectMiddleware(text_app())
    scope = http_scope(path="/api/x", headers=[], root_path="/api", raw_path=b"/x")
    start, _ = await drive(middleware, scope)
    assert header(start, b"location") == b"https://testserver/api/x"
    scope = http_scope(path="/api/x", headers=[(b"host", b"h")], root_path="/api", raw_path=None)
    del scope["raw_path"]
    start, _ = await drive(middleware, scope)
    assert header(start, b"location") == b"https://h/api/x"


@pytest.mark.parametrize("host", [b"evil.com/@good.com", b"a b", b"x:abc"])
async def test_unusable_host_is_400_not_an_open_redirect(host: bytes) -> None:
    scope = http_scope(headers=[(b"host", host)])
    start, _ = await drive(HTTPSRedirectMiddleware(text_app()), scope)
    assert start["status"] == 400 and header(start, b"location") is None


async def test_no_host_and_no_server_is_400() -> None:
    start, _ = await drive(HTTPSRedirectMiddleware(text_app()), http_scope(headers=[], server=None))
    assert start["status"] == 400


async def test_websocket_redirected_with_http_response_extension() -> None:
    scope = http_scope(kind="websocket", scheme="ws", path="/ws",
                       headers=[(b"host", b"example.com")],
                       extensions={"websocket.http.response": {}})
    start, body = await drive(HTTPSRedirectMiddleware(text_app()), scope)
    assert start["type"] == "websocket.http.response.start" and start["status"] == 308
    assert header(start, b"location") == b"wss://example.com/ws"
    assert body["type"] == "websocket.http.response.body"


async def test_websocket_without_extension_is_closed() -> None:
    scope = http_scope(kind="websocket", scheme="ws", headers=[(b"host", b"example.com")])
    sent = await drive(HTTPSRedirectMiddleware(text_app()), scope)
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": "Use wss://"}]


async def test_wss_and_lifespan_pass_through() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    middleware = HTTPSRedirectMiddleware(app)
    await drive(middleware, http_scope(kind="websocket", scheme="wss"))
    await drive(middleware, {"type": "lifespan"})
    assert seen == ["websocket", "lifespan"]
