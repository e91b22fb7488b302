from __future__ import annotations

import pytest

from joey.middleware import SecurityHeadersMiddleware
from joey.types import Receive, Scope, Send

from .helpers import client, drive, http_scope, text_app


async def test_defaults_over_http_have_no_hsts() -> None:
    async with client(SecurityHeadersMiddleware(text_app("ok"))) as c:
        r = await c.get("/")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert "strict-transport-security" not in r.headers
    assert "content-security-policy" not in r.headers
    assert r.text == "ok"


async def test_hsts_over_https_with_directives() -> None:
    app = SecurityHeadersMiddleware(
        text_app(), hsts_max_age=63072000, hsts_include_subdomains=True, hsts_preload=True
    )
    async with client(app, "https://example.com") as c:
        r = await c.get("/")
    assert r.headers["strict-transport-security"] == (
        "max-age=63072000; includeSubDomains; preload"
    )


async def test_app_headers_win_and_csp_is_passed_through() -> None:
    csp = "default-src 'self'; img-src 'self' data:"
    app = SecurityHeadersMiddleware(
        text_app(headers=[("X-Frame-Options", "SAMEORIGIN"), ("content-type", "text/plain")]),
        content_security_policy=csp,
        content_security_policy_report_only="default-src 'none'",
        extra_headers={"Permissions-Policy": "geolocation=()"},
    )
    async with client(app, "https://example.com") as c:
        r = await c.get("/")
    assert r.headers.get_list("x-frame-options") == ["SAMEORIGIN"]
    assert r.headers["content-security-policy"] == csp
    assert r.headers["content-security-policy-report-only"] == "default-src 'none'"
    assert r.headers["permissions-policy"] == "geolocation=()"


async def test_every_header_can_be_turned_off() -> None:
    app = SecurityHeadersMiddleware(
        text_app(), hsts_max_age=None, content_type_options=None, frame_options=None,
        referrer_policy=None,
    )
    async with client(app, "https://example.com") as c:
        r = await c.get("/")
    assert set(r.headers) == {"content-type", "content-length"}


def test_configuration_errors() -> None:
    with pytest.raises(ValueError, match="preload"):
        SecurityHeadersMiddleware(text_app(), hsts_preload=True)
    with pytest.raises(ValueError, match="CR, LF"):
        SecurityHeadersMiddleware(text_app(), content_security_policy="a\r\nSet-Cookie: x=1")


async def test_websocket_and_lifespan_pass_through() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    middleware = SecurityHeadersMiddleware(app)
    await drive(middleware, http_scope(kind="websocket"))
    await drive(middleware, {"type": "lifespan"})
    assert seen == ["websocket", "lifespan"]
