from __future__ import annotations

import asyncio
import logging

import pytest

from joey.middleware import AccessLogMiddleware, RequestIDMiddleware
from joey.types import Message, Receive, Scope, Send

from .helpers import client, drive, http_scope, stream_app, text_app


def records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "joey.access"]


@pytest.fixture(autouse=True)
def _capture(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "joey.access")


async def test_one_structured_line_per_request(caplog: pytest.LogCaptureFixture) -> None:
    async with client(AccessLogMiddleware(text_app("hello", status=404))) as c:
        await c.get("/missing?x=1")
    (record,) = records(caplog)
    fields = record.__dict__
    assert fields["method"] == "GET"
    assert fields["path"] == "/missing"
    assert fields["query"] == "x=1"
    assert fields["status_code"] == 404
    assert fields["response_bytes"] == 5
    assert fields["duration_ms"] >= 0
    assert fields["request_id"] is None
    assert fields["client"] == "127.0.0.1:123"
    assert fields["disconnected"] is False and fields["error"] is None
    assert record.levelno == logging.INFO
    assert record.getMessage().startswith('127.0.0.1:123 "GET /missing?x=1 HTTP/1.1" 404 5B ')


async def test_streamed_bytes_are_counted(caplog: pytest.LogCaptureFixture) -> None:
    async with client(AccessLogMiddleware(stream_app([b"ab", b"cde"]))) as c:
        await c.get("/")
    assert records(caplog)[0].__dict__["response_bytes"] == 5


async def test_request_id_is_included_when_installed(caplog: pytest.LogCaptureFixture) -> None:
    app = AccessLogMiddleware(RequestIDMiddleware(text_app()))
    async with client(app) as c:
        await c.get("/", headers={"x-request-id": "rid-1"})
    (record,) = records(caplog)
    assert record.__dict__["request_id"] == "rid-1"
    assert record.getMessage().endswith("id=rid-1")


async def test_app_error_is_logged_as_500_and_reraised(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise LookupError("boom")

    with pytest.raises(LookupError):
        await drive(AccessLogMiddleware(app), http_scope())
    (record,) = records(caplog)
    assert record.__dict__["status_code"] == 500
    assert record.__dict__["error"] == "LookupError"
    assert "(LookupError)" in record.getMessage()


async def test_error_after_start_keeps_the_sent_status(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"par", "more_body": True})
        raise RuntimeError("mid-stream")

    with pytest.raises(RuntimeError):
        await drive(AccessLogMiddleware(app), http_scope())
    (record,) = records(caplog)
    assert record.__dict__["status_code"] == 200
    assert record.__dict__["response_bytes"] == 3


async def test_client_disconnect_before_response_is_499(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass  # a long-poll handler that gives up when the client leaves

    await drive(
        AccessLogMiddleware(app), http_scope(),
        [{"type": "http.request", "body": b""}, {"type": "http.disconnect"}],
    )
    (record,) = records(caplog)
    assert record.__dict__["status_code"] == 499
    assert record.__dict__["disconnected"] is True
    assert "client disconnected" in record.getMessage()


async def test_send_failing_after_disconnect_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def gone(message: Message) -> None:
        raise OSError("client gone")

    async def receive() -> Message:
        await asyncio.sleep(1)
        return {"type": "http.disconnect"}

    with pytest.raises(OSError):
        await AccessLogMiddleware(text_app())(http_scope(), receive, gone)
    (record,) = records(caplog)
    assert record.__dict__["disconnected"] is True
    assert record.__dict__["status_code"] == 200  # the status the app tried to send


async def test_skip_paths_and_disabled_logger(caplog: pytest.LogCaptureFixture) -> None:
    async with client(AccessLogMiddleware(text_app(), skip_paths={"/healthz"})) as c:
        await c.get("/healthz")
    quiet = logging.getLogger("tests.quiet-access")
    quiet.setLevel(logging.WARNING)
    async with client(AccessLogMiddleware(text_app(), logger=quiet)) as c:
        r = await c.get("/")
    assert r.status_code == 200
    assert records(caplog) == []


async def test_custom_logger_and_level(caplog: pytest.LogCaptureFixture) -> None:
    custom = logging.getLogger("tests.custom-access")
    with caplog.at_level(logging.DEBUG, "tests.custom-access"):
        async with client(AccessLogMiddleware(text_app(), logger=custom, level=logging.DEBUG)) as c:
            await c.get("/")
    (record,) = [r for r in caplog.records if r.name == "tests.custom-access"]
    assert record.levelno == logging.DEBUG


async def test_websocket_and_lifespan_are_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        pass

    await drive(AccessLogMiddleware(app), http_scope(kind="websocket"))
    await drive(AccessLogMiddleware(app), {"type": "lifespan"})
    assert records(caplog) == []
