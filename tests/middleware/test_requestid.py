from __future__ import annotations

import logging
import re

import pytest

from joey.middleware import RequestIDLogFilter, RequestIDMiddleware, get_request_id
from joey.types import Receive, Scope, Send

from .helpers import client, drive, http_scope, text_app

log = logging.getLogger("tests.requestid")


def echo_app(seen: list[tuple[str | None, str | None]]) -> object:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((get_request_id(), scope.get("joey.request_id")))
        log.warning("inside the handler")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return app


async def test_generates_uuid4_hex_and_echoes_it() -> None:
    seen: list[tuple[str | None, str | None]] = []
    async with client(RequestIDMiddleware(echo_app(seen))) as c:  # type: ignore[arg-type]
        r = await c.get("/")
    request_id = r.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    assert seen == [(request_id, request_id)]
    assert get_request_id() is None  # reset once the request is over


@pytest.mark.parametrize(
    ("incoming", "kept"),
    [
        ("abc-123_DEF.4:5", True),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("bad id with spaces", False),
        ("new\\nline", False),
        ("<script>", False),
    ],
)
async def test_incoming_id_kept_only_when_valid(incoming: str, kept: bool) -> None:
    async with client(RequestIDMiddleware(text_app())) as c:
        r = await c.get("/", headers={"x-request-id": incoming})
    assert (r.headers["x-request-id"] == incoming) is kept


async def test_custom_header_generator_and_untrusted_clients() -> None:
    app = RequestIDMiddleware(
        text_app(), header_name="X-Correlation-ID", trust_incoming=False,
        generator=lambda: "fixed-id",
    )
    async with client(app) as c:
        r = await c.get("/", headers={"x-correlation-id": "client-id"})
    assert r.headers["x-correlation-id"] == "fixed-id"
    assert "x-request-id" not in r.headers


async def test_app_set_header_is_not_duplicated() -> None:
    app = RequestIDMiddleware(text_app(headers=[("X-Request-ID", "from-app")]))
    async with client(app) as c:
        r = await c.get("/")
    assert r.headers.get_list("x-request-id") == ["from-app"]


async def test_log_records_during_the_request_carry_the_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log_filter = RequestIDLogFilter()
    caplog.handler.addFilter(log_filter)
    try:
        async with client(RequestIDMiddleware(echo_app([]))) as c:  # type: ignore[arg-type]
            r = await c.get("/", headers={"x-request-id": "trace-me"})
        log.warning("outside any request")
    finally:
        caplog.handler.removeFilter(log_filter)
    inside, outside = [record for record in caplog.records if record.name == log.name]
    assert r.headers["x-request-id"] == "trace-me"
    assert inside.request_id == "trace-me"  # type: ignore[attr-defined]
    assert outside.request_id == "-"  # type: ignore[attr-defined]


def test_filter_keeps_an_explicit_request_id() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    record.request_id = "given"
    assert RequestIDLogFilter(default="none").filter(record)
    assert record.__dict__["request_id"] == "given"


async def test_websocket_gets_an_id_and_lifespan_passes() -> None:
    seen: list[object] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        in_websocket = scope["type"] == "websocket"
        seen.append(get_request_id() if in_websocket else scope.get("joey.request_id"))

    middleware = RequestIDMiddleware(app)
    await drive(middleware, http_scope(kind="websocket", headers=[(b"x-request-id", b"ws-1")]))
    await drive(middleware, {"type": "lifespan"})
    assert seen == ["ws-1", None]


async def test_id_is_reset_even_when_the_app_raises() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await drive(RequestIDMiddleware(app), http_scope())
    assert get_request_id() is None
