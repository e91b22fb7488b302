"""The request path, fuzzed in process: hostile requests of every shape against one app that
reads requests in every way Joey can (tests/fuzz/app.py). The property is in
tests/fuzz/properties.py; the same requests go over real servers in test_servers.py."""

from __future__ import annotations

import asyncio

from hypothesis import example, given
from hypothesis import strategies as st

from tests.fuzz.app import app, csrf_tokens
from tests.fuzz.profiles import fuzz_settings
from tests.fuzz.properties import check, check_websocket, serve, serve_websocket
from tests.fuzz.strategies import RawRequest, WebSocketSession, requests, websocket_sessions

CSRF_TOKENS = csrf_tokens()


def json_post(path: bytes, body: bytes, *extra: tuple[bytes, bytes]) -> RawRequest:
    return RawRequest("POST", path, [(b"host", b"testserver"),
                                     (b"content-type", b"application/json"),
                                     (b"content-length", str(len(body)).encode()), *extra],
                      body)


# The defects of the last hardening round (issue #23), each a regression example:
# deep JSON failing validation at its first element was a 500 on a typed body...
@example(json_post(b"/b/struct", b"[" * 5_000 + b"]" * 5_000), "uvicorn")
@example(json_post(b"/b/embedded", b'{"user": ' + b"[" * 5_000 + b"]" * 5_000 + b"}"),
         "uvicorn")
# ...two Host headers let request.url take the first...
@example(RawRequest("GET", b"/r/url", [(b"host", b"testserver"), (b"host", b"evil.example")]),
         "uvicorn")
# ...and a non-ASCII CSRF cookie was a 500 for any request.
@example(RawRequest("GET", b"/q?q=1", [(b"host", b"testserver"),
                                       (b"cookie", "csrftoken=abc.\u00e9".encode())]),
         "uvicorn")
# What the fuzzers found since (fixed; see git log):
# Basic credentials that are not ASCII at all...
@example(RawRequest("GET", b"/s/basic", [(b"host", b"testserver"),
                                         (b"authorization", b"Basic \xe9")]), "uvicorn")
# ...a date too large for a timestamp on a static file...
@example(RawRequest("GET", b"/static/a.txt", [
    (b"host", b"testserver"), (b"if-modified-since", b"Mon, 01 Jan " + b"7" * 30 + b" GMT")]),
    "uvicorn")
# ...a charset with a NUL, for request.text()...
@example(RawRequest("GET", b"/r/deps", [(b"content-type", b"text/plain; charset=utf\x00-8"),
                                        (b"content-length", b"1")], b"x"), "uvicorn")
# ...and a form cut off by the client, which the CSRF middleware passed on as complete.
@example(RawRequest("POST", b"/csrf/form", [
    (b"host", b"testserver"), (b"cookie", b"csrftoken=" + CSRF_TOKENS[0].encode()),
    (b"content-type", b"application/x-www-form-urlencoded"), (b"content-length", b"200")],
    f"csrf_token={CSRF_TOKENS[0]}&name=transfer-1000000".encode(), [], 80), "uvicorn")
@given(requests(), st.sampled_from(["uvicorn", "surrogateescape"]))
@fuzz_settings(300)
def test_any_request_is_answered_through_the_handlers(request: RawRequest,
                                                       decode: str) -> None:
    check(request, asyncio.run(serve(app, request, decode)))


@given(requests(area="b"))
@fuzz_settings(150)
def test_any_json_body_is_answered_through_the_handlers(request: RawRequest) -> None:
    """The typed bodies alone, so their share of the budget does not depend on the draw of
    routes: JSON of any type and depth against every kind of body type."""
    check(request, asyncio.run(serve(app, request)))


# A file part where the route wants text: the handler got an UploadFile as its str (found by
# make fuzz).
@example(RawRequest("POST", b"/f/fields", [
    (b"content-type", b"multipart/form-data; boundary=xyz")],
    b'--xyz\r\nContent-Disposition: form-data; name="name"; filename=""\r\n\r\n\r\n'
    b"--xyz--\r\n"))
@given(requests(area="f"))
@fuzz_settings(100)
def test_any_form_is_answered_through_the_handlers(request: RawRequest) -> None:
    check(request, asyncio.run(serve(app, request)))


# A parameter failing validation before accept was logged as the handler's failure.
@example(WebSocketSession(b"/ws/1?nick=%ff", [(b"host", b"testserver")], [], [], False))
@given(websocket_sessions())
@fuzz_settings(150)
def test_any_websocket_session_ends_cleanly(session: WebSocketSession) -> None:
    check_websocket(asyncio.run(serve_websocket(app, session)))
