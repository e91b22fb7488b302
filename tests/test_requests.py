"""The request: lazy attributes, query strings, body reading, limits, and bad input."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qsl

import pytest

from joey import App, ContentTooLarge, RedirectResponse, Request
from joey.datastructures import QueryParams
from joey.exceptions import BadRequest
from joey.requests import ClientDisconnect, HTTPConnection
from joey.testing import TestClient

from .asgi import (
    Recorder,
    body_messages,
    call,
    close_test_clients,  # noqa: F401 - autouse fixture
    http_scope,
)

# --- query strings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "pairs"),
    [
        (b"", []),
        (b"?", []),
        (b"a=1", [("a", "1")]),
        (b"?a=1", [("a", "1")]),  # one stray leading "?" is ignored
        (b"a=1&b=2&c=3", [("a", "1"), ("b", "2"), ("c", "3")]),
        (b"tag=x&tag=y&tag=z", [("tag", "x"), ("tag", "y"), ("tag", "z")]),
        (b"q=a+b", [("q", "a b")]),
        (b"q=a%2Bb", [("q", "a+b")]),
        (b"q=%C3%A9t%C3%A9", [("q", "été")]),
        (b"k%20ey=v%26al", [("k ey", "v&al")]),
        (b"a=", [("a", "")]),
        (b"a", [("a", "")]),
        (b"=b", [("", "b")]),
        (b"a=1&&b=2&", [("a", "1"), ("b", "2")]),
        (b"&&", []),
        (b"a=1=2", [("a", "1=2")]),
        (b"a=%zz&b=%", [("a", "%zz"), ("b", "%")]),  # invalid escapes kept literally
        (b"a=1;b=2", [("a", "1;b=2")]),  # ";" is not a separator (as in Python >= 3.10)
    ],
)
def test_query_string_parsing(raw: bytes, pairs: list[tuple[str, str]]) -> None:
    params = QueryParams.from_bytes(raw)
    assert params.multi_items() == pairs
    # the standard library agrees (after the leading "?" that it does not strip)
    assert pairs == parse_qsl(raw.decode().removeprefix("?"), keep_blank_values=True)


def test_query_string_invalid_utf8_is_bad_request() -> None:
    with pytest.raises(BadRequest, match="not valid UTF-8"):
        QueryParams.from_bytes(b"a=%ff")
    with pytest.raises(BadRequest):
        QueryParams.from_bytes(b"\xff=1")


def _query_app() -> App:
    app = App()

    @app.get("/q")
    async def read_query(request: Request) -> dict[str, Any]:
        return {"items": request.query_params.multi_items(),
                "tag": request.query_params.getlist("tag"),
                "same": request.query_params is request.query_params}

    @app.get("/ignores-query")
    async def ignores_query() -> str:
        return "fine"

    return app


def test_query_through_a_handler() -> None:
    client = TestClient(_query_app())
    assert client.get("/q").json() == {"items": [], "tag": [], "same": True}
    response = client.get("/q?tag=a&tag=b+c&x=%2F&empty=&flag")
    assert response.json() == {
        "items": [["tag", "a"], ["tag", "b c"], ["x", "/"], ["empty", ""], ["flag", ""]],
        "tag": ["a", "b c"],
        "same": True,
    }


def test_request_query_is_a_deprecated_alias_of_query_params() -> None:
    request = Request(http_scope("/q", query_string=b"a=1"), Recorder().receive, app=App())
    with pytest.warns(DeprecationWarning, match=r"request\.query is deprecated: use "
                                                r"request\.query_params"):
        assert request.query is request.query_params
    assert request.query_params["a"] == "1"


async def test_invalid_utf8_query_is_400_only_when_read() -> None:
    app = _query_app()
    recorder = await call(app, http_scope("/q", query_string=b"a=%ff%fe"))
    assert recorder.status == 400
    assert b"not valid UTF-8" in recorder.body
    recorder = await call(app, http_scope("/ignores-query", query_string=b"a=%ff%fe"))
    assert recorder.status == 200
    assert recorder.body == b"fine"


# --- bad input is never a 500 ---------------------------------------------------------------------


def _path_app() -> App:
    app = App()

    @app.get("/p/{name}")
    async def named(name: str) -> str:
        return name

    @app.get("/n/{id:int}")
    async def number(id: int) -> str:
        return str(id)

    @app.get("/h")
    async def header(request: Request) -> str:
        return request.headers["x-odd"]

    return app


async def test_invalid_percent_encoding_in_path_is_not_an_error() -> None:
    app = _path_app()
    # servers leave an invalid escape as it is; it is then plain text in the segment
    recorder = await call(app, http_scope("/p/a%zz", raw_path=b"/p/a%zz"))
    assert recorder.status == 200
    assert recorder.body == b"a%zz"
    recorder = await call(app, http_scope("/p/%", raw_path=b"/p/%"))
    assert recorder.status == 200
    assert recorder.body == b"%"
    recorder = await call(app, http_scope("/n/%zz", raw_path=b"/n/%zz"))
    assert recorder.status == 404


async def test_invalid_utf8_in_path_is_400() -> None:
    app = _path_app()
    recorder = await call(app, http_scope("/p/\ufffd", raw_path=b"/p/%ff"))
    assert recorder.status == 400
    assert recorder.header(b"content-type") == [b"application/problem+json"]
    assert b"not valid UTF-8" in recorder.body
    recorder = await call(app, http_scope("/nowhere/\ufffd", raw_path=b"/nowhere/%c3%28"))
    assert recorder.status == 400


async def test_non_ascii_header_values_are_read_as_latin1() -> None:
    recorder = await call(_path_app(), http_scope("/h", headers=[(b"x-odd", b"caf\xe9 \xff")]))
    assert recorder.status == 200
    assert recorder.body == "café ÿ".encode()


def test_unconvertible_path_parameter_is_404() -> None:
    assert TestClient(_path_app()).get("/n/twelve").status_code == 404


# --- lazy attributes ------------------------------------------------------------------------------


def test_request_attributes() -> None:
    app = App()

    @app.get("/info/{id:int}", name="info")
    async def info(request: Request) -> dict[str, Any]:
        request.state.seen = True
        return {
            "method": request.method,
            "url": str(request.url),
            "path": request.path,
            "path_params": request.path_params,
            "accept": request.headers.getlist("x-multi"),
            "cookies": request.cookies if request.cookies is request.cookies else None,
            "client": list(request.client) if request.client else None,
            "state": "seen" in request.state,
            "app": request.app is app,
            "url_for": request.url_path_for("info", id=7),
            "repr": repr(request),
        }

    client = TestClient(app)
    response = client.get(
        "/info/5?x=1",
        headers=[("X-Multi", "a"), ("x-multi", "b"), ("cookie", 'sid=abc; theme="dark"; bad')],
    )
    assert response.json() == {
        "method": "GET",
        "url": "http://testserver/info/5?x=1",
        "path": "/info/5",
        "path_params": {"id": 5},
        "accept": ["a", "b"],
        "cookies": {"sid": "abc", "theme": "dark"},
        "client": ["testclient", 50000],
        "state": True,
        "app": True,
        "url_for": "/info/7",
        "repr": "<Request GET /info/5>",
    }


def test_url_path_for_includes_root_path() -> None:
    app = App()

    @app.get("/here")
    async def here(request: Request) -> list[str]:
        return [request.url_path_for("here"), str(request.url), request.path,
                str(request.url_for("here"))]

    assert TestClient(app, root_path="/prefix").get("/here?q=1").json() == [
        "/prefix/here", "http://testserver/prefix/here?q=1", "/prefix/here",
        "http://testserver/prefix/here",
    ]


async def test_client_absent_and_session_without_middleware() -> None:
    scope = http_scope("/")
    del scope["client"]
    request = Request(scope, Recorder().receive, app=App())
    assert request.client is None
    with pytest.raises(RuntimeError, match="needs SessionMiddleware"):
        _ = request.session
    scope["session"] = {"user": 1}
    assert request.session == {"user": 1}


# --- body -----------------------------------------------------------------------------------------


def _request(*chunks: bytes, headers: list[tuple[bytes, bytes]] | None = None,
             limit: int | None = None) -> tuple[Request, Recorder]:
    recorder = Recorder(body_messages(*chunks))
    request = Request(http_scope("/", method="POST", headers=headers), recorder.receive,
                      app=App(), max_body_size=limit)
    return request, recorder


async def test_stream_yields_chunks_as_they_arrive() -> None:
    request, _ = _request(b"ab", b"", b"cd")
    assert [chunk async for chunk in request.stream()] == [b"ab", b"cd"]


async def test_stream_twice_is_a_clear_error() -> None:
    request, _ = _request(b"ab")
    assert [chunk async for chunk in request.stream()] == [b"ab"]
    with pytest.raises(RuntimeError, match="already streamed"):
        [chunk async for chunk in request.stream()]


async def test_body_is_kept_for_later_reads() -> None:
    request, recorder = _request(b"ab", b"cd")
    assert await request.body() == b"abcd"
    assert await request.body() == b"abcd"
    assert [chunk async for chunk in request.stream()] == [b"abcd"]
    assert recorder.received == 2


async def test_empty_body() -> None:
    request, _ = _request()
    assert await request.body() == b""


@pytest.mark.parametrize(
    ("content_type", "raw", "text"),
    [
        (None, "héllo".encode(), "héllo"),
        (b"text/plain; charset=latin-1", "héllo".encode("latin-1"), "héllo"),
        (b'text/plain; Charset="utf-16"', "hé".encode("utf-16"), "hé"),
        (b"text/plain; charset=", b"plain", "plain"),
    ],
)
async def test_text_uses_the_declared_charset(
    content_type: bytes | None, raw: bytes, text: str
) -> None:
    headers = [(b"content-type", content_type)] if content_type else []
    request, _ = _request(raw, headers=headers)
    assert await request.text() == text


async def test_text_bad_charset_or_bytes_is_400() -> None:
    request, _ = _request(b"x", headers=[(b"content-type", b"text/plain; charset=klingon")])
    with pytest.raises(BadRequest, match="Unknown charset 'klingon'"):
        await request.text()
    request, _ = _request(b"\xff")
    with pytest.raises(BadRequest, match="not valid utf-8"):
        await request.text()


def test_json_body_and_malformed_json_is_400_with_a_message() -> None:
    app = App()

    @app.post("/echo")
    async def echo(request: Request) -> Any:
        return {"got": await request.json()}

    client = TestClient(app)
    assert client.post("/echo", json={"a": [1, 2]}).json() == {"got": {"a": [1, 2]}}
    response = client.post("/echo", content=b'{"a": ')
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"].startswith("Invalid JSON body: ")
    assert "truncated" in response.json()["detail"].lower()
    assert client.post("/echo", content=b"").status_code == 400


# --- body limits ----------------------------------------------------------------------------------


def _limited_app() -> App:
    app = App(max_body_size=10)

    @app.post("/small")
    async def small(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    @app.post("/big", max_body_size=100)
    async def big(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    @app.post("/any", max_body_size=None)
    async def unlimited(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    return app


async def test_declared_content_length_over_the_limit_is_413_before_reading() -> None:
    app = _limited_app()
    scope = http_scope("/small", method="POST", headers=[(b"content-length", b"11")])
    recorder = await call(app, scope, body_messages(b"x" * 11))
    assert recorder.status == 413
    assert recorder.header(b"content-type") == [b"application/problem+json"]
    assert b"at most 10" in recorder.body
    assert recorder.received == 0  # refused before a single receive()


async def test_streamed_body_over_the_limit_is_cut_off_early() -> None:
    app = _limited_app()
    chunks = body_messages(*([b"abcd"] * 1000))  # no Content-Length: chunked upload
    recorder = await call(app, http_scope("/small", method="POST"), chunks)
    assert recorder.status == 413
    assert recorder.received <= 4  # stopped once past 10 bytes, the rest never read
    assert len(recorder.incoming) >= 996


async def test_body_limit_exactly_at_the_limit_is_fine() -> None:
    app = _limited_app()
    scope = http_scope("/small", method="POST", headers=[(b"content-length", b"10")])
    recorder = await call(app, scope, body_messages(b"12345", b"67890"))
    assert recorder.status == 200
    assert recorder.body == b'{"size":10}'


async def test_body_limit_per_route() -> None:
    app = _limited_app()
    recorder = await call(app, http_scope("/big", method="POST"), body_messages(b"x" * 100))
    assert recorder.status == 200
    recorder = await call(app, http_scope("/big", method="POST"), body_messages(b"x" * 101))
    assert recorder.status == 413
    recorder = await call(app, http_scope("/any", method="POST"), body_messages(b"x" * 5000))
    assert recorder.status == 200
    assert recorder.body == b'{"size":5000}'


def test_default_body_limit_is_one_mebibyte() -> None:
    app = App()

    @app.post("/")
    async def upload(request: Request) -> int:
        return len(await request.body())

    client = TestClient(app)
    assert client.post("/", content=b"x" * (1024 * 1024)).status_code == 200
    assert client.post("/", content=b"x" * (1024 * 1024 + 1)).status_code == 413


async def test_stream_raises_payload_too_large_directly() -> None:
    request, _ = _request(b"123", b"456", limit=5)
    chunks = []
    with pytest.raises(ContentTooLarge):
        async for chunk in request.stream():
            chunks.append(chunk)
    assert chunks == [b"123"]


async def test_stream_starts_on_first_iteration_like_a_generator() -> None:
    # stream() is an async-iterator class (so that the compiled build compiles it); it keeps
    # the async generator's behaviour: nothing is read or checked before the first __anext__.
    request, recorder = _request(b"ab", headers=[(b"content-length", b"99")], limit=5)
    stream = request.stream()
    assert recorder.received == 0
    with pytest.raises(ContentTooLarge, match="at most 5"):
        await anext(stream)
    assert recorder.received == 0
    with pytest.raises(StopAsyncIteration):  # finished after an error, as a generator is
        await anext(stream)


async def test_a_stream_made_before_body_yields_the_kept_body() -> None:
    request, recorder = _request(b"ab", b"cd")
    stream = request.stream()
    assert await request.body() == b"abcd"
    assert [chunk async for chunk in stream] == [b"abcd"]
    assert [chunk async for chunk in stream] == []
    assert recorder.received == 2


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        ([{"type": "http.request", "body": b"123456", "more_body": True}], ContentTooLarge),
        ([{"type": "http.disconnect"}], ClientDisconnect),
    ],
)
async def test_a_stream_is_finished_after_it_raised(
    messages: list[dict[str, Any]], error: type[Exception]
) -> None:
    recorder = Recorder([*messages, *body_messages(b"never read")])
    request = Request(http_scope("/", method="POST"), recorder.receive, app=App(),
                      max_body_size=5)
    stream = request.stream()
    with pytest.raises(error):
        await anext(stream)
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    assert recorder.received == 1


async def test_a_second_stream_fails_once_then_is_finished() -> None:
    request, _ = _request(b"ab")
    assert [chunk async for chunk in request.stream()] == [b"ab"]
    again = request.stream()
    with pytest.raises(RuntimeError, match="already streamed"):
        await anext(again)
    assert [chunk async for chunk in again] == []


# --- disconnects ----------------------------------------------------------------------------------


async def test_disconnect_while_reading_body_sends_nothing() -> None:
    app = App()
    reached: list[str] = []

    @app.post("/")
    async def read(request: Request) -> str:
        await request.body()
        reached.append("after body")  # pragma: no cover - must not run
        return "unreachable"  # pragma: no cover

    recorder = await call(app, http_scope("/", method="POST"),
                          [{"type": "http.request", "body": b"a", "more_body": True},
                           {"type": "http.disconnect"}])
    assert recorder.sent == []
    assert reached == []


async def test_client_disconnect_raised_from_stream() -> None:
    recorder = Recorder([{"type": "http.disconnect"}])
    request = Request(http_scope("/"), recorder.receive, app=App())
    with pytest.raises(ClientDisconnect):
        await request.body()
    assert await request.is_disconnected()


async def test_is_disconnected_keeps_body_messages() -> None:
    request, _ = _request(b"kept")
    assert not await request.is_disconnected()
    assert await request.body() == b"kept"


async def test_is_disconnected_when_the_client_is_gone() -> None:
    recorder = Recorder([{"type": "http.disconnect"}])
    request = Request(http_scope("/"), recorder.receive, app=App())
    assert await request.is_disconnected()
    assert await request.is_disconnected()
    assert recorder.received == 1


async def test_is_disconnected_does_not_wait() -> None:
    recorder = Recorder([], then_disconnect=False)
    request = Request(http_scope("/"), recorder.receive, app=App())
    assert not await asyncio.wait_for(request.is_disconnected(), timeout=1)


# --- cleanups -------------------------------------------------------------------------------------


def test_call_on_close_runs_after_the_response_even_on_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = App()
    events: list[str] = []

    async def async_cleanup() -> None:
        events.append("async")

    def failing_cleanup() -> None:
        raise RuntimeError("cleanup broke")

    @app.get("/ok")
    async def ok(request: Request) -> str:
        request.call_on_close(lambda: events.append("sync"))
        request.call_on_close(failing_cleanup)
        request.call_on_close(async_cleanup)
        return "ok"

    @app.get("/boom")
    async def boom(request: Request) -> str:
        request.call_on_close(lambda: events.append("after error"))
        raise RuntimeError("boom")

    client = TestClient(app, raise_server_exceptions=False)
    with caplog.at_level("ERROR", logger="joey"):
        assert client.get("/ok").text == "ok"
    assert events == ["async", "sync"]  # last registered first; one failing stops none
    assert any("failing_cleanup" in r.getMessage() for r in caplog.records)
    assert client.get("/boom").status_code == 500
    assert events[-1] == "after error"


async def test_unknown_messages_while_streaming_are_ignored() -> None:
    recorder = Recorder([{"type": "http.something-new"}, *body_messages(b"x")])
    request = Request(http_scope("/"), recorder.receive, app=App())
    assert await request.body() == b"x"


async def test_is_disconnected_twice_keeps_both_messages() -> None:
    request, _ = _request(b"a", b"b")
    assert not await request.is_disconnected()
    assert not await request.is_disconnected()
    assert await request.body() == b"ab"


def test_form_body() -> None:
    app = App()

    @app.post("/form")
    async def form(request: Request) -> dict[str, Any]:
        data = await request.form()
        again = await request.form()
        return {"name": data["name"], "same": data is again}

    response = TestClient(app).post("/form", data={"name": "joey"})
    assert response.json() == {"name": "joey", "same": True}


@pytest.mark.parametrize("value", [b"-1", b"abc", b" 5", b"\xb2", b"1\xb9", b""])
async def test_invalid_content_length_is_400(value: bytes) -> None:
    scope = http_scope("/small", method="POST", headers=[(b"content-length", value)])
    recorder = await call(_limited_app(), scope)
    assert recorder.status == 400
    assert b"Content-Length" in recorder.body


@pytest.mark.parametrize("charset", [b"utf\x00-8", b"undefined", b"\xc3\xbf*i\x00\x00t"])
async def test_a_charset_python_cannot_even_look_up_is_a_400(charset: bytes) -> None:
    # Found by atheris (target "body_text"): a NUL in the charset made bytes.decode raise
    # ValueError, and "undefined" raises UnicodeError: both were a 500.
    request, _ = _request(b"x", headers=[(b"content-type", b"text/plain; charset=" + charset)])
    with pytest.raises(BadRequest, match="Unknown charset"):
        await request.text()


# --- url_for (absolute, as in Starlette) and url_path_for (the path) ------------------------------


def test_url_for_is_absolute_and_url_path_for_is_the_path() -> None:
    app = App()

    @app.get("/books/{id:int}", name="book")
    async def book(id: int, request: Request) -> dict[str, str]:
        url = request.url_for("book", id=id + 1)
        assert url == f"https://shop.example/store/books/{id + 1}"  # a URL equals its text
        return {"url": str(url), "path": request.url_path_for("book", id=id + 1)}

    @app.get("/go")
    async def go(request: Request) -> RedirectResponse:
        return RedirectResponse(request.url_for("book", id=1))  # Starlette's habit

    with TestClient(app, base_url="https://shop.example", root_path="/store") as client:
        assert client.get("/books/1").json() == {
            "url": "https://shop.example/store/books/2", "path": "/store/books/2"}
        response = client.get("/go", follow_redirects=False)
        assert response.headers["location"] == "https://shop.example/store/books/1"


async def _no_body() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


def test_a_request_sets_every_field_of_a_connection() -> None:
    # Request.__init__ sets HTTPConnection's fields itself (a call fewer per request): a field
    # added there and not here would be missing from every request.
    app = App()
    request = Request(http_scope("/x"), _no_body, app)
    # (a compiled class has no __slots__: mypyc lists its attributes in __mypyc_attrs__)
    fields = getattr(HTTPConnection, "__slots__", None) or (
        HTTPConnection.__mypyc_attrs__)  # type: ignore[attr-defined]
    assert "scope" in fields
    for name in fields:
        getattr(request, name)  # AttributeError if it was never set
    assert (request.app, request.path_params, request.cleanups, request.error) == (
        app, {}, None, None)
    assert Request({**http_scope("/x"), "app": app}, _no_body).app is app
