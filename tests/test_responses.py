"""Responses: each class, headers, cookies, HEAD, no-body statuses, conversion, streaming."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pydantic
import pytest

from joey import (
    App,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    ProblemResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from joey.exceptions import NotFound
from joey.responses import format_cookie, to_response
from joey.testing import TestClient

from .asgi import (
    Recorder,
    close_test_clients,  # noqa: F401 - autouse fixture
    http_scope,
)


async def _send(response: Response, method: str = "GET", **recorder: Any) -> Recorder:
    record = Recorder(then_disconnect=False, **recorder)
    await response(http_scope("/", method=method), record.receive, record.send)
    return record


# --- each class -----------------------------------------------------------------------------------


async def test_response_bytes_and_str() -> None:
    record = await _send(Response(b"raw", status_code=201))
    assert record.status == 201
    assert record.headers == [(b"content-length", b"3")]  # no media type, no Content-Type
    assert record.body == b"raw"
    record = await _send(Response("é", media_type="text/csv"))
    assert record.header(b"content-type") == [b"text/csv; charset=utf-8"]
    assert record.header(b"content-length") == [b"2"]
    assert record.body == "é".encode()
    assert (await _send(Response(bytearray(b"ba")))).body == b"ba"
    assert (await _send(Response(memoryview(b"mv")))).body == b"mv"


def test_response_refuses_other_content() -> None:
    with pytest.raises(TypeError, match="Response content must be bytes or str, not dict"):
        Response({"a": 1})


@pytest.mark.parametrize(
    ("response", "content_type", "body"),
    [
        (PlainTextResponse("hi"), b"text/plain; charset=utf-8", b"hi"),
        (HTMLResponse("<p>x</p>"), b"text/html; charset=utf-8", b"<p>x</p>"),
        (JSONResponse({"a": [1, None]}), b"application/json", b'{"a":[1,null]}'),
        (JSONResponse([1, 2]), b"application/json", b"[1,2]"),
        (ProblemResponse({"status": 418}), b"application/problem+json", b'{"status":418}'),
        (Response(b"x", media_type="image/png"), b"image/png", b"x"),
        (PlainTextResponse("x", media_type="text/plain; charset=ascii"),
         b"text/plain; charset=ascii", b"x"),
    ],
)
async def test_media_types_and_charset(response: Response, content_type: bytes,
                                       body: bytes) -> None:
    record = await _send(response)
    assert record.header(b"content-type") == [content_type]
    assert record.header(b"content-length") == [str(len(body)).encode()]
    assert record.body == body


async def test_user_content_type_wins() -> None:
    response = JSONResponse({}, headers={"Content-Type": "application/vnd.api+json"})
    record = await _send(response)
    assert record.header(b"content-type") == [b"application/vnd.api+json"]


def test_json_response_encodes_many_types() -> None:
    @dataclasses.dataclass
    class Point:
        x: int
        y: int

    class Item(msgspec.Struct):
        name: str

    class Model(pydantic.BaseModel):
        when: datetime

    moment = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    body = JSONResponse({
        "point": Point(1, 2), "item": Item("a"), "model": Model(when=moment),
        "set": {1}, "frozen": frozenset({"f"}), "uuid": uuid.UUID(int=1),
    }).body
    assert msgspec.json.decode(body) == {
        "point": {"x": 1, "y": 2}, "item": {"name": "a"}, "model": {"when": "2024-01-02T03:04:05Z"},
        "set": [1], "frozen": ["f"], "uuid": "00000000-0000-0000-0000-000000000001",
    }
    with pytest.raises(TypeError, match="Object of type object is not JSON serializable"):
        JSONResponse({"x": object()})


async def test_content_length_always_right_even_when_user_set_a_wrong_one() -> None:
    response = Response(b"12345", headers={"content-length": "999"})
    response.headers.append("Content-Length", "1")
    record = await _send(response)
    assert record.header(b"content-length") == [b"5"]
    # body changed after construction: the length follows it
    response = PlainTextResponse("short")
    response.body = b"a longer body"
    assert (await _send(response)).header(b"content-length") == [b"13"]


async def test_repeated_headers_are_kept_in_order() -> None:
    response = Response(b"", headers={"x-one": "1"})
    response.headers.append("set-cookie", "a=1")
    response.headers.append("Set-Cookie", "b=2")
    response.headers["x-one"] = "replaced"
    record = await _send(response)
    assert record.header(b"set-cookie") == [b"a=1", b"b=2"]
    assert record.header(b"x-one") == [b"replaced"]


def test_repeated_set_cookie_survives_the_test_client() -> None:
    app = App()

    @app.get("/")
    async def cookies() -> Response:
        response = Response(b"")
        response.set_cookie("a", "1")
        response.set_cookie("b", "2")
        return response

    response = TestClient(app).get("/")
    assert response.headers.get_list("set-cookie") == [
        "a=1; Path=/; SameSite=Lax; HttpOnly", "b=2; Path=/; SameSite=Lax; HttpOnly",
    ]


# --- header safety --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"x-bad": "a\r\nset-cookie: evil=1"},
        {"x-bad": "a\nb"},
        {"x-bad": "a\rb"},
        {"x-bad": "a\x00b"},
        {"x-bad\r\nx-evil": "v"},
        {"x-bad\n": "v"},
        {"": "v"},
        {"bad name": "v"},
        {"bad:name": "v"},
    ],
)
def test_crlf_or_bad_names_refused_at_construction(headers: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"CR, LF or NUL|Invalid header name"):
        Response(b"", headers=headers)


def test_crlf_refused_when_added_later_and_in_redirects() -> None:
    response = Response(b"")
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        response.headers["x"] = "a\r\nb"
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        response.headers.append("x", "a\nb")
    # a Location built from user input cannot split the header: the URL is percent-encoded
    redirect = RedirectResponse("/next\r\nset-cookie: x=1")
    assert redirect.headers["location"] == "/next%0D%0Aset-cookie:%20x=1"


# --- cookies --------------------------------------------------------------------------------------


def test_set_cookie_safe_defaults() -> None:
    assert format_cookie("sid", "abc") == "sid=abc; Path=/; SameSite=Lax; HttpOnly"


def test_set_cookie_options() -> None:
    moment = datetime(2030, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert format_cookie(
        "sid", "abc", max_age=60, expires=moment, path="/app", domain="example.com",
        secure=True, httponly=False, samesite="strict",
    ) == ("sid=abc; Max-Age=60; Expires=Tue, 01 Jan 2030 10:00:00 GMT; Path=/app; "
          "Domain=example.com; SameSite=Strict; Secure")
    assert format_cookie("a", "", expires=86400, path=None, samesite=None, httponly=False) == (
        "a=; Expires=Fri, 02 Jan 1970 00:00:00 GMT"
    )
    assert format_cookie("p", "1", partitioned=True) == (
        "p=1; Path=/; SameSite=Lax; Secure; HttpOnly; Partitioned"
    )


def test_samesite_none_forces_secure() -> None:
    assert format_cookie("a", "1", samesite="none") == (
        "a=1; Path=/; SameSite=None; Secure; HttpOnly"
    )


@pytest.mark.parametrize(
    ("key", "value", "options", "message"),
    [
        ("bad name", "v", {}, "Invalid cookie name"),
        ("a;b", "v", {}, "Invalid cookie name"),
        ("a", "has space", {}, "Invalid cookie value"),
        ("a", "semi;colon", {}, "Invalid cookie value"),
        ("a", 'quo"te', {}, "Invalid cookie value"),
        ("a", "back\\slash", {}, "Invalid cookie value"),
        ("a", "v", {"path": "/\r\n"}, "CR, LF or NUL"),
        ("a", "v", {"domain": "x\ny"}, "CR, LF or NUL"),
        ("a", "v", {"samesite": "sometimes"}, "samesite must be"),
    ],
)
def test_cookie_validation(key: str, value: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        format_cookie(key, value, **options)


def test_set_and_delete_cookie_on_a_response() -> None:
    response = Response(b"")
    response.set_cookie("sid", "abc", max_age=3600)
    response.delete_cookie("old", path="/app")
    assert response.headers.getlist("set-cookie") == [
        "sid=abc; Max-Age=3600; Path=/; SameSite=Lax; HttpOnly",
        "old=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/app; SameSite=Lax; "
        "HttpOnly",
    ]


# --- HEAD, 204, 304 -------------------------------------------------------------------------------


async def test_head_has_the_same_headers_and_no_body() -> None:
    get = await _send(JSONResponse({"a": 1}, headers={"x-h": "1"}))
    head = await _send(JSONResponse({"a": 1}, headers={"x-h": "1"}), method="HEAD")
    assert head.status == get.status
    assert head.headers == get.headers
    assert head.header(b"content-length") == [b"7"]
    assert head.body == b""


def test_head_through_the_app_for_a_get_route() -> None:
    app = App()

    @app.get("/doc")
    async def doc() -> dict[str, str]:
        return {"hello": "world"}

    client = TestClient(app)
    get = client.get("/doc")
    head = client.head("/doc")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"] == "17"
    assert head.headers["content-type"] == "application/json"


@pytest.mark.parametrize("status", [204, 304, 205])
async def test_no_body_statuses_have_no_length_and_no_body(status: int) -> None:
    record = await _send(Response(b"ignored", status_code=status,
                                  headers={"content-length": "7"}))
    assert record.status == status
    assert record.header(b"content-length") == []
    assert record.body == b""


async def test_informational_status_has_no_content_length() -> None:
    record = await _send(Response(b"", status_code=103))
    assert record.header(b"content-length") == []


# --- redirects ------------------------------------------------------------------------------------


async def test_redirect_response() -> None:
    record = await _send(RedirectResponse("/a b?x=1&y=é#frag", headers={"x-r": "1"}))
    assert record.status == 307
    assert record.header(b"location") == [b"/a%20b?x=1&y=%C3%A9#frag"]
    assert record.header(b"x-r") == [b"1"]
    assert record.header(b"content-length") == [b"0"]
    record = await _send(RedirectResponse("https://example.com/already%20encoded", 301))
    assert record.status == 301
    assert record.header(b"location") == [b"https://example.com/already%20encoded"]


# --- background -----------------------------------------------------------------------------------


async def test_background_runs_after_the_body_is_sent() -> None:
    events: list[str] = []
    record = Recorder()

    async def after() -> None:
        events.append(f"background after {len(record.sent)} messages")

    await Response(b"x", background=after)(http_scope("/"), record.receive, record.send)
    assert events == ["background after 2 messages"]


# --- to_response ----------------------------------------------------------------------------------


@dataclasses.dataclass
class _Pair:
    a: int
    b: str


class _Struct(msgspec.Struct):
    id: int


class _Model(pydantic.BaseModel):
    name: str


@pytest.mark.parametrize(
    ("value", "status", "content_type", "body"),
    [
        ({"a": 1}, 200, b"application/json", b'{"a":1}'),
        ([1, "x"], 200, b"application/json", b'[1,"x"]'),
        ((1, 2), 200, b"application/json", b"[1,2]"),
        (_Struct(id=3), 200, b"application/json", b'{"id":3}'),
        (_Pair(1, "x"), 200, b"application/json", b'{"a":1,"b":"x"}'),
        (_Model(name="n"), 200, b"application/json", b'{"name":"n"}'),
        (5, 200, b"application/json", b"5"),
        (1.5, 200, b"application/json", b"1.5"),
        (True, 200, b"application/json", b"true"),
        ("text", 200, b"text/plain; charset=utf-8", b"text"),
        (b"\x00\x01", 200, b"application/octet-stream", b"\x00\x01"),
    ],
)
async def test_to_response_conversions(value: Any, status: int, content_type: bytes,
                                       body: bytes) -> None:
    record = await _send(to_response(value))
    assert record.status == status
    assert record.header(b"content-type") == [content_type]
    assert record.body == body


async def test_to_response_none_is_204_and_status_override() -> None:
    record = await _send(to_response(None))
    assert record.status == 204
    assert record.body == b""
    assert record.header(b"content-length") == []
    assert to_response(None, 202).status_code == 202
    assert to_response({"a": 1}, 201).status_code == 201
    response = Response(b"as is")
    assert to_response(response, 201) is response


def test_to_response_refuses_unknown_values() -> None:
    with pytest.raises(TypeError, match="cannot turn a object into a response"):
        to_response(object())


def test_handler_return_values_through_the_app() -> None:
    app = App()

    @app.get("/struct")
    async def struct() -> _Struct:
        return _Struct(id=1)

    @app.get("/none")
    async def nothing() -> None:
        return None

    @app.get("/bytes")
    async def raw() -> bytes:
        return b"\xff"

    client = TestClient(app)
    assert client.get("/struct").json() == {"id": 1}
    none = client.get("/none")
    assert none.status_code == 204
    assert none.content == b""
    assert "content-length" not in none.headers
    assert client.get("/bytes").headers["content-type"] == "application/octet-stream"


# --- streaming ------------------------------------------------------------------------------------


async def test_streaming_async_iterator() -> None:
    async def numbers() -> AsyncIterator[str | bytes]:
        yield "1\n"
        yield b""  # empty chunks are skipped: an empty body message would not end anything
        yield b"2\n"

    record = await _send(StreamingResponse(numbers(), media_type="text/plain",
                                           headers={"x-s": "1", "content-length": "99"}))
    assert record.status == 200
    assert record.header(b"content-type") == [b"text/plain; charset=utf-8"]
    assert record.header(b"content-length") == []  # unknown up front, a wrong one dropped
    assert record.header(b"x-s") == [b"1"]
    bodies = [m for m in record.sent if m["type"] == "http.response.body"]
    assert bodies == [
        {"type": "http.response.body", "body": b"1\n", "more_body": True},
        {"type": "http.response.body", "body": b"2\n", "more_body": True},
        {"type": "http.response.body", "body": b""},
    ]


async def test_streaming_sync_iterator_runs_in_a_thread() -> None:
    threads: list[int] = []

    def chunks() -> Iterator[str]:
        for text in ("a", "b"):
            threads.append(threading.get_ident())
            yield text

    record = await _send(StreamingResponse(chunks()))
    assert record.body == b"ab"
    assert threads and threading.get_ident() not in threads
    record = await _send(StreamingResponse(["x", b"y"]))
    assert record.body == b"xy"


async def test_streaming_head_sends_no_body_and_does_not_iterate() -> None:
    pulled: list[str] = []

    async def chunks() -> AsyncIterator[bytes]:
        pulled.append("x")
        yield b"x"

    record = await _send(StreamingResponse(chunks()), method="HEAD")
    assert record.status == 200
    assert record.body == b""
    assert pulled == []


async def test_streaming_stops_when_the_client_disconnects() -> None:
    state: dict[str, Any] = {"sent": 0, "closed": False, "cancelled": False}
    disconnect = asyncio.Event()

    async def endless() -> AsyncGenerator[bytes, None]:
        try:
            while True:
                state["sent"] += 1
                if state["sent"] == 3:
                    disconnect.set()
                yield b"chunk"
                await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            state["cancelled"] = True
            raise
        finally:
            state["closed"] = True

    async def receive() -> dict[str, Any]:
        await disconnect.wait()
        return {"type": "http.disconnect"}

    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def background() -> None:  # pragma: no cover - must not run
        state["background"] = True

    generator = endless()
    response = StreamingResponse(generator, background=background)
    await asyncio.wait_for(response(http_scope("/"), receive, send), timeout=5)
    assert state["closed"]
    assert state["cancelled"]
    assert state["sent"] <= 4
    assert "background" not in state
    with pytest.raises(StopAsyncIteration):  # finished: it will never run again
        await generator.__anext__()
    assert not any(m["type"] == "http.response.body" and not m.get("more_body") for m in sent)


async def test_streaming_disconnect_while_a_sync_iterator_blocks() -> None:
    record = Recorder([{"type": "http.disconnect"}])
    release = threading.Event()

    def slow() -> Iterator[bytes]:
        release.wait(5)
        yield b"late"

    try:
        # the response returns on disconnect, without waiting for the blocked thread
        await asyncio.wait_for(StreamingResponse(slow())(http_scope("/"), record.receive,
                                                         record.send), timeout=2)
    finally:
        release.set()
    assert record.status == 200
    assert not any(m.get("body") for m in record.sent)


async def test_streaming_background_runs_after_completion() -> None:
    events: list[str] = []

    async def after() -> None:
        events.append("done")

    record = await _send(StreamingResponse(iter([b"a"]), background=after))
    assert record.body == b"a"
    assert events == ["done"]


async def test_streaming_error_propagates_and_oserror_is_swallowed() -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"first"
        raise ValueError("mid-stream")

    with pytest.raises(ValueError, match="mid-stream"):
        await _send(StreamingResponse(broken()))

    async def gone(message: Any) -> None:
        raise OSError("client went away")

    async def never() -> dict[str, Any]:
        await asyncio.Event().wait()
        raise AssertionError  # pragma: no cover

    await StreamingResponse(iter([b"a"]))(http_scope("/"), never, gone)  # no exception


def test_problem_response_from_error() -> None:
    response = ProblemResponse.from_error(NotFound("gone", headers={"x-why": "1"}))
    assert response.status_code == 404
    assert response.headers["x-why"] == "1"
    assert msgspec.json.decode(response.body) == {
        "type": "about:blank", "title": "Not Found", "status": 404, "detail": "gone",
    }


def test_repr() -> None:
    assert repr(JSONResponse({}, status_code=201)) == "<JSONResponse 201>"


def test_str_subclass_content_is_encoded() -> None:
    class Markup(str):
        pass

    assert HTMLResponse(Markup("<b>é</b>")).body == "<b>é</b>".encode()


# --- where the classes live -----------------------------------------------------------------------


def test_streaming_response_is_importable_from_responses_as_before() -> None:
    import joey
    import joey.responses
    import joey.streaming
    from joey.responses import StreamingResponse as FromResponses

    assert FromResponses is joey.streaming.StreamingResponse is joey.StreamingResponse
    assert issubclass(FromResponses, joey.responses.Response)
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchResponse'"):
        joey.responses.NoSuchResponse  # noqa: B018


# -- a forgotten await (issue #26 §1) -----------------------------------------------------


class Page(msgspec.Struct):
    title: str


class PydanticPage(pydantic.BaseModel):
    title: str


async def render(title: str) -> str:
    return f"<h1>{title}</h1>"


async def load(title: str) -> Page:
    return Page(title)


async def load_pydantic(title: str) -> PydanticPage:
    return PydanticPage(title=title)


def test_a_returned_coroutine_is_a_500_that_asks_for_the_await(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = App()

    @app.get("/page")
    async def page() -> str:
        return render("home")  # type: ignore[return-value]

    @app.get("/typed")
    async def typed() -> Page:
        return load("typed")  # type: ignore[return-value]

    @app.get("/pydantic")
    async def typed_pydantic() -> PydanticPage:
        return load_pydantic("typed")  # type: ignore[return-value]

    @app.get("/sync")
    def sync_page() -> Any:
        return render("sync")

    client = TestClient(app, raise_server_exceptions=False)
    for path, handler in [("/page", "page"), ("/typed", "typed"),
                          ("/pydantic", "typed_pydantic"), ("/sync", "sync_page")]:
        caplog.clear()
        assert client.get(path).status_code == 500
        assert f"<locals>.{handler} (" in caplog.text, path  # the log names the handler
        assert "did you forget `await`? Write `return await ...`" in caplog.text, path
        # the coroutine was closed: Python does not warn "never awaited" later (warnings
        # are errors in this suite)


def test_to_response_of_an_awaitable_names_it() -> None:
    coroutine = render("x")
    with pytest.raises(TypeError, match=r"returned render\(\.\.\.\), a coroutine, instead of "
                                        r"its result: did you forget `await`"):
        to_response(coroutine)
    assert coroutine.cr_frame is None  # closed
