"""The app: dispatch, HEAD/OPTIONS/405, threads, errors, conversion, mounts, redirects, limits."""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
import threading
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import pytest

from joey import (
    App,
    Depends,
    HTTPError,
    JSONResponse,
    NotFound,
    PlainTextResponse,
    Request,
    Response,
    Router,
    StreamingResponse,
)
from joey.app import Middleware
from joey.declarations import LateDeclaration
from joey.testing import TestClient
from joey.types import ASGIApp, Receive, Scope, Send

from .asgi import (
    Recorder,
    body_messages,
    call,
    close_test_clients,  # noqa: F401 - autouse fixture
    http_scope,
)

# --- dispatch -------------------------------------------------------------------------------------


async def test_unknown_scope_type_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="Unknown ASGI scope type 'carrier-pigeon'"):
        await App()({"type": "carrier-pigeon"}, Recorder().receive, Recorder().send)


async def test_http_scope_gets_the_app() -> None:
    app = App()

    @app.get("/")
    async def index(request: Request) -> bool:
        return request.scope["app"] is app and request.app is app

    recorder = await call(app, http_scope("/"))
    assert recorder.body == b"true"


async def test_lifespan_answers_startup_and_shutdown() -> None:
    recorder = Recorder([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    await App()({"type": "lifespan", "state": {}}, recorder.receive, recorder.send)
    assert recorder.sent == [{"type": "lifespan.startup.complete"},
                             {"type": "lifespan.shutdown.complete"}]


async def test_route_conflict_fails_the_lifespan_startup(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = App()

    @app.get("/")
    async def one() -> None: ...

    @app.get("/")
    async def two() -> None: ...

    recorder = Recorder([{"type": "lifespan.startup"}])
    with caplog.at_level(logging.ERROR, logger="joey"):
        await app({"type": "lifespan", "state": {}}, recorder.receive, recorder.send)
    assert len(recorder.sent) == 1
    assert recorder.sent[0]["type"] == "lifespan.startup.failed"
    assert "one" in recorder.sent[0]["message"] and "two" in recorder.sent[0]["message"]
    assert any("Startup failed" in r.getMessage() for r in caplog.records)


async def test_unrouted_websocket_is_refused() -> None:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/ws", "raw_path": b"/ws", "root_path": "",
             "query_string": b"", "headers": [], "subprotocols": []}
    await App()(scope, receive, send)
    assert [m["type"] for m in sent] == ["websocket.close"]


# --- the entry point ------------------------------------------------------------------------------


def test_servers_see_the_app_as_an_asgi3_app() -> None:
    # App.__call__ is joey._engine.entry.app_call, assigned to the class (compiled in the
    # compiled build): servers must still find a coroutine function there, or they would call
    # the app as ASGI 2.
    import uvicorn

    app = App()
    assert inspect.iscoroutinefunction(app.__call__)
    assert asyncio.iscoroutinefunction(app.__call__)
    config = uvicorn.Config(app, lifespan="off", log_config=None)
    config.load()
    assert config.interface == "asgi3"


async def test_a_subclass_wraps_the_entry_point_with_super() -> None:
    seen: list[str] = []

    class Traced(App):
        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            seen.append(scope["path"])
            await super().__call__(scope, receive, send)

    app = Traced()

    @app.get("/x")
    async def x() -> str:
        return "x"

    recorder = await call(app, http_scope("/x"))
    assert (recorder.status, recorder.body, seen) == (200, b"x", ["/x"])


# --- HEAD, OPTIONS, 405 ---------------------------------------------------------------------------


def _methods_app() -> App:
    app = App()

    @app.get("/doc")
    async def doc() -> dict[str, str]:
        return {"doc": "body"}

    @app.post("/doc")
    async def post_doc() -> str:
        return "posted"

    @app.get("/custom-head")
    async def custom_get() -> str:
        return "get body"

    @app.head("/custom-head")
    async def custom_head() -> Response:
        return Response(b"", headers={"x-from": "head handler"})

    @app.get("/custom-options")
    async def custom_get2() -> str:
        return "get"

    @app.options("/custom-options")
    async def custom_options() -> Response:
        return Response(b"", status_code=200, headers={"x-from": "options handler"})

    @app.put("/only-put")
    async def only_put() -> str:
        return "put"

    return app


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("status", [200, 204, 304, 404])
async def test_the_app_sends_a_response_as_the_response_sends_itself(
    method: str, status: int,
) -> None:
    # The engine sends a plain Response's two messages itself (a perf shortcut): the same
    # messages as Response.__call__, the background after them.
    events: list[str] = []

    def make() -> Response:
        async def background() -> None:
            events.append("background")

        return PlainTextResponse("body", status, headers={"x-h": "1"}, background=background)

    app = App()

    @app.get("/r")
    async def answer() -> Response:
        return make()

    via_app = await call(app, http_scope("/r", method=method))
    direct = Recorder()
    await make()(http_scope("/r", method=method), direct.receive, direct.send)
    assert via_app.sent == direct.sent
    assert events == ["background", "background"]


def test_head_is_served_by_get_routes() -> None:
    client = TestClient(_methods_app())
    get = client.get("/doc")
    head = client.head("/doc")
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert head.headers == get.headers


def test_explicit_head_handler_wins() -> None:
    response = TestClient(_methods_app()).head("/custom-head")
    assert response.headers["x-from"] == "head handler"


def test_head_on_a_route_without_get_is_405() -> None:
    response = TestClient(_methods_app()).head("/only-put")
    assert response.status_code == 405
    assert response.headers["allow"] == "PUT, OPTIONS"


def test_options_is_answered_with_allow() -> None:
    client = TestClient(_methods_app())
    response = client.options("/doc")
    assert response.status_code == 204
    assert response.headers["allow"] == "GET, HEAD, POST, OPTIONS"
    assert response.content == b""
    response = client.options("/custom-options")
    assert response.status_code == 200
    assert response.headers["x-from"] == "options handler"
    assert client.options("/missing").status_code == 404


def test_405_lists_allowed_methods() -> None:
    client = TestClient(_methods_app())
    response = client.delete("/doc")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, POST, OPTIONS"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "DELETE is not allowed here."


def test_websocket_only_path_is_404_over_http() -> None:
    app = App()

    @app.websocket("/ws")
    async def ws(websocket: Any) -> None: ...  # pragma: no cover

    assert TestClient(app).get("/ws").status_code == 404


# --- sync and async handlers ----------------------------------------------------------------------


def test_sync_handlers_run_in_a_worker_thread() -> None:
    app = App()
    threads: dict[str, int] = {}

    @app.get("/async")
    async def in_loop() -> str:
        threads["loop"] = threading.get_ident()
        return "async"

    @app.get("/sync")
    def in_thread(request: Request) -> str:
        threads["sync"] = threading.get_ident()
        return f"sync {request.method}"

    client = TestClient(app)
    assert client.get("/async").text == "async"
    assert client.get("/sync").text == "sync GET"
    assert threads["sync"] != threads["loop"]
    assert threads["loop"] != threading.get_ident()  # the loop runs in the client's thread


def test_status_code_on_the_decorator() -> None:
    app = App()

    @app.post("/items", status_code=201)
    async def create() -> dict[str, int]:
        return {"id": 1}

    @app.delete("/items", status_code=202)
    async def delete() -> None:
        return None

    @app.put("/items", status_code=201)
    async def replace() -> Response:
        return PlainTextResponse("explicit", status_code=200)

    client = TestClient(app)
    response = client.post("/items")
    assert response.status_code == 201
    assert response.json() == {"id": 1}
    assert client.delete("/items").status_code == 202
    assert client.put("/items").status_code == 200  # a Response keeps its own status


# --- errors ---------------------------------------------------------------------------------------


class _AppError(Exception):
    pass


class _SpecificError(_AppError):
    pass


class _UnhandledSubclass(KeyError):
    pass


def test_exception_handlers_are_matched_along_the_mro() -> None:
    app = App(exception_handlers={
        _AppError: lambda request, exc: JSONResponse({"handler": "base"}, status_code=409),
    })

    @app.exception_handler(LookupError)
    async def lookup(request: Request, exc: LookupError) -> Response:
        return JSONResponse({"handler": "lookup", "type": type(exc).__name__}, status_code=404)

    @app.exception_handler(_SpecificError)
    def specific(request: Request, exc: _SpecificError) -> Response:
        return JSONResponse({"handler": "specific", "path": request.path}, status_code=422)

    @app.get("/base")
    async def base() -> None:
        raise _AppError()

    @app.get("/specific")
    async def specific_route() -> None:
        raise _SpecificError()

    @app.get("/key")
    async def key() -> None:
        raise _UnhandledSubclass("k")

    client = TestClient(app)
    response = client.get("/base")
    assert (response.status_code, response.json()) == (409, {"handler": "base"})
    response = client.get("/specific")
    assert (response.status_code, response.json()) == (422, {"handler": "specific",
                                                             "path": "/specific"})
    response = client.get("/key")
    assert response.json() == {"handler": "lookup", "type": "_UnhandledSubclass"}
    assert client.get("/key").status_code == 404  # cached lookup gives the same answer


def test_exception_handler_can_override_http_errors() -> None:
    app = App()

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> Response:
        return PlainTextResponse(f"custom 404 for {request.path}", status_code=404)

    assert TestClient(app).get("/nope").text == "custom 404 for /nope"


def test_failing_exception_handler_is_logged_and_gives_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = App()

    @app.exception_handler(_AppError)
    async def broken(request: Request, exc: _AppError) -> Response:
        raise RuntimeError("handler broke")

    @app.exception_handler(HTTPError)
    async def http_broken(request: Request, exc: HTTPError) -> Response:
        raise NotFound("from the handler")

    @app.get("/")
    async def index() -> None:
        raise _AppError()

    @app.get("/http")
    async def http() -> None:
        raise HTTPError(409)

    client = TestClient(app, raise_server_exceptions=False)
    with caplog.at_level(logging.ERROR, logger="joey"):
        response = client.get("/")
        assert response.status_code == 500
        assert client.get("/http").status_code == 404  # an HTTPError from the handler counts
    messages = [r.getMessage() for r in caplog.records]
    assert any("Exception handler" in m and "broken" in m for m in messages)


def test_unhandled_exception_is_500_with_generic_body_and_logged_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = App()

    @app.get("/boom")
    async def explode() -> None:
        raise ValueError("secret database password in here")

    with caplog.at_level(logging.ERROR, logger="joey"):
        response = TestClient(app, raise_server_exceptions=False).get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {"type": "about:blank", "title": "Internal Server Error",
                               "status": 500}
    assert "secret" not in response.text
    records = [r for r in caplog.records if r.name == "joey"]
    assert len(records) == 1
    assert "explode" in records[0].getMessage()
    assert "GET /boom" in records[0].getMessage()
    assert records[0].exc_info is not None
    assert "secret database password" in caplog.text  # the traceback went to the log
    assert "Traceback" in caplog.text


def test_debug_mode_shows_the_traceback() -> None:
    app = App(debug=True)

    @app.get("/boom")
    async def explode() -> None:
        raise ValueError("visible in debug")

    response = TestClient(app, raise_server_exceptions=False).get("/boom")
    assert response.status_code == 500
    detail = response.json()["detail"]
    assert "Traceback" in detail
    assert "ValueError: visible in debug" in detail


def test_error_in_middleware_is_attributed_to_middleware(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(request: Request, call_next: Any) -> Response:
        raise RuntimeError("mw")

    app = App(middleware=[broken])
    with caplog.at_level(logging.ERROR, logger="joey"):
        assert TestClient(app, raise_server_exceptions=False).get("/x").status_code == 500
    assert "Unhandled RuntimeError in middleware for GET /x" in caplog.text


async def test_failure_after_the_response_started_is_logged_without_a_second_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = App()

    async def chunks() -> AsyncIterator[bytes]:
        yield b"first"
        raise RuntimeError("broke mid-stream")

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        return StreamingResponse(chunks())

    with caplog.at_level(logging.ERROR, logger="joey"):
        recorder = await call(app, http_scope("/stream"), body_messages(),
                              then_disconnect=False)
    assert [m["type"] for m in recorder.sent] == ["http.response.start", "http.response.body"]
    assert recorder.status == 200
    assert recorder.sent[1] == {"type": "http.response.body", "body": b"first",
                                "more_body": True}  # left unfinished: the client sees a cut
    assert "after it had started" in caplog.text
    assert "broke mid-stream" in caplog.text


async def test_failure_before_a_custom_response_started_is_a_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(Response):
        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            raise RuntimeError("before start")

    app = App()

    @app.get("/")
    async def index() -> Response:
        return Broken(b"")

    with caplog.at_level(logging.ERROR, logger="joey"):
        recorder = await call(app, http_scope("/"))
    assert recorder.status == 500
    assert b"before start" not in recorder.body
    assert "before start" in caplog.text


def test_unconvertible_return_value_is_500_naming_the_handler(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = App()

    @app.get("/weird")
    async def returns_an_object() -> object:
        return object()

    with caplog.at_level(logging.ERROR, logger="joey"):
        response = TestClient(app, raise_server_exceptions=False).get("/weird")
    assert response.status_code == 500
    assert "object" not in response.text
    assert "returns_an_object" in caplog.text
    assert "cannot turn a object into a response" in caplog.text


def test_client_going_away_while_sending_is_not_an_error() -> None:
    app = App()

    @app.get("/")
    async def index() -> str:
        return "hi"

    async def run() -> None:
        async def send(message: Any) -> None:
            raise OSError("connection reset")

        await app(http_scope("/"), Recorder().receive, send)

    import asyncio

    asyncio.run(run())  # no exception escapes


@pytest.mark.parametrize("path", ["/text", "/json", "/nowhere"])
async def test_a_client_gone_mid_response_is_not_an_error_whatever_the_response_class(
    path: str, caplog: pytest.LogCaptureFixture,
) -> None:
    # PlainTextResponse, JSONResponse, the 404's problem document: each sends itself as Response
    # does, so the engine sends it without tracking (a client gone is a debug line). The
    # compiled build took every subclass for a response that could fail half-way (its
    # __call__ compared by identity), and logged an error when the client left.
    app = App()

    @app.get("/text")
    async def text() -> str:
        return "hi"

    @app.get("/json")
    async def json_() -> dict[str, int]:
        return {"a": 1}

    async def send(message: Any) -> None:
        if message["type"] == "http.response.body":
            raise OSError("connection reset")

    caplog.set_level(logging.DEBUG, logger="joey")
    await app(http_scope(path), Recorder().receive, send)
    assert "Client went away" in caplog.text
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_which_response_classes_the_engine_sends_itself() -> None:
    from joey.files import FileResponse
    from joey.responses import (
        EncodedProblemResponse,
        ProblemResponse,
        RedirectResponse,
        sends_whole,
    )

    class Plain(PlainTextResponse):
        pass

    class Wrapped(PlainTextResponse):
        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            await super().__call__(scope, receive, send)

    class Below(Wrapped):
        pass

    for cls in (Response, PlainTextResponse, JSONResponse, ProblemResponse, EncodedProblemResponse,
                RedirectResponse, Plain):
        assert sends_whole(cls) and cls._sends_whole, cls
    for cls in (StreamingResponse, FileResponse, Wrapped, Below):
        assert not sends_whole(cls) and not cls._sends_whole, cls


# --- mounts ---------------------------------------------------------------------------------------


def _recording_app(seen: list[dict[str, Any]]) -> Any:
    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan here")
        seen.append({"path": scope["path"], "root_path": scope["root_path"],
                     "raw_path": scope.get("raw_path")})
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"mounted"})

    return asgi


def test_mount_sets_root_path_and_keeps_the_full_path() -> None:
    seen: list[dict[str, Any]] = []
    app = App()
    app.mount("/sub", _recording_app(seen))

    @app.get("/sub/owned")
    async def owned() -> str:
        return "outer route"

    client = TestClient(app)
    assert client.get("/sub/x/y?q=1").text == "mounted"
    assert client.get("/sub").text == "mounted"
    assert client.get("/sub/").text == "mounted"
    assert client.get("/sub/owned").text == "outer route"
    assert client.get("/subway").status_code == 404
    assert seen == [
        {"path": "/sub/x/y", "root_path": "/sub", "raw_path": b"/sub/x/y"},
        {"path": "/sub", "root_path": "/sub", "raw_path": b"/sub"},
        {"path": "/sub/", "root_path": "/sub", "raw_path": b"/sub/"},
    ]


def test_mount_under_a_root_path() -> None:
    seen: list[dict[str, Any]] = []
    app = App()
    app.mount("/sub", _recording_app(seen))
    assert TestClient(app, root_path="/outer").get("/sub/x").text == "mounted"
    assert seen == [{"path": "/outer/sub/x", "root_path": "/outer/sub",
                     "raw_path": b"/outer/sub/x"}]


def test_mounted_joey_app_routes_on_the_rest_of_the_path() -> None:
    inner = App()

    @inner.get("/")
    async def inner_root(request: Request) -> dict[str, object]:
        return {"root": request.scope["root_path"], "path": request.url_path_for("leaf", id=1),
                "url": request.url_for("leaf", id=1)}  # a URL encodes as its text

    @inner.get("/leaf/{id:int}")
    async def leaf(id: int) -> dict[str, int]:
        return {"leaf": id}

    app = App()
    app.mount("/inner", inner)
    with TestClient(app) as client:
        assert client.get("/inner/leaf/5").json() == {"leaf": 5}
        assert client.get("/inner").json() == {"root": "/inner", "path": "/inner/leaf/1",
                                               "url": "http://testserver/inner/leaf/1"}
        assert client.get("/inner/leaf/x").status_code == 404
        response = client.get("/inner/leaf/5/", follow_redirects=False)
        assert response.status_code == 308
        assert response.headers["location"] == "/inner/leaf/5"


def test_mount_at_root_sees_everything_not_routed() -> None:
    seen: list[dict[str, Any]] = []
    app = App()
    app.mount("/", _recording_app(seen))

    @app.get("/api")
    async def api() -> str:
        return "api"

    client = TestClient(app)
    assert client.get("/api").text == "api"
    assert client.get("/anything/else").text == "mounted"
    assert seen == [{"path": "/anything/else", "root_path": "", "raw_path": b"/anything/else"}]


def test_mount_inside_a_router_prefix() -> None:
    from joey import Router

    seen: list[dict[str, Any]] = []
    router = Router(prefix="/r")
    router.mount("/m", _recording_app(seen))
    app = App()
    app.include_router(router)
    assert TestClient(app).get("/r/m/file").text == "mounted"
    assert seen[0]["root_path"] == "/r/m"


# --- trailing-slash redirects ---------------------------------------------------------------------


def _slash_app() -> App:
    app = App()

    @app.get("/items")
    async def items() -> str:
        return "items"

    @app.get("/dir/")
    async def directory() -> str:
        return "dir"

    @app.get("/files/{name}")
    async def file(name: str) -> str:
        return name

    @app.get("/{name}")
    async def top(name: str) -> str:
        return name

    return app


def test_redirect_location_is_relative_and_keeps_the_query() -> None:
    client = TestClient(_slash_app(), follow_redirects=False)
    response = client.get("/items/?a=1&b=%20x")
    assert response.status_code == 308
    assert response.headers["location"] == "/items?a=1&b=%20x"
    assert client.head("/items/").status_code == 308


def test_redirect_location_includes_root_path() -> None:
    client = TestClient(_slash_app(), root_path="/app", follow_redirects=False)
    response = client.get("/items/?x=1")
    assert response.status_code == 308
    assert response.headers["location"] == "/app/items?x=1"
    response = client.get("/files/x/")
    assert response.headers["location"] == "/app/files/x"


def test_redirect_keeps_percent_encoded_segments_encoded() -> None:
    client = TestClient(_slash_app(), follow_redirects=False)
    response = client.get("/files/a%3Fb/")
    assert response.status_code == 308
    assert response.headers["location"] == "/files/a%3Fb"
    assert client.get("/files/a%3Fb/", follow_redirects=True).text == "a?b"
    response = client.get("/files/caf%C3%A9/")
    assert response.headers["location"] == "/files/caf%C3%A9"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("//evil.com/", None), ("//evil.com", None), ("///evil.com/", None),
        ("/%2Fevil.com/", None), ("/%2F%2Fevil.com/", None),
        # a browser reads "/\\host" as "//host": the backslash must stay encoded
        ("/%5Cevil.com/", b"/%5Cevil.com"), ("/\\evil.com/", b"/%5Cevil.com"),
    ],
)
@pytest.mark.parametrize("root_path", ["", "/app"])
async def test_redirect_never_points_at_another_host(
    path: str, expected: bytes | None, root_path: str
) -> None:
    from urllib.parse import unquote

    raw = (root_path + path).encode()
    scope = http_scope(unquote(root_path + path), raw_path=raw, root_path=root_path)
    recorder = await call(_slash_app(), scope)
    if expected is None:
        assert recorder.status == 404
        assert recorder.header(b"location") == []
    else:
        assert recorder.status == 308
        assert recorder.header(b"location") == [root_path.encode() + expected]


def test_post_to_other_slash_form_is_not_redirected() -> None:
    response = TestClient(_slash_app(), follow_redirects=False).post("/items/")
    assert response.status_code == 404


# --- body limits through the client ---------------------------------------------------------------


def test_body_limit_by_content_length_through_the_client() -> None:
    app = App(max_body_size=4)
    reached: list[bool] = []

    @app.post("/")
    async def upload(request: Request) -> int:
        reached.append(True)
        return len(await request.body())

    client = TestClient(app)
    assert client.post("/", content=b"1234").text == "4"
    response = client.post("/", content=b"12345")
    assert response.status_code == 413
    assert response.json()["title"] == "Content Too Large"


def test_repr() -> None:
    app = App()

    @app.get("/")
    async def index() -> None: ...

    assert repr(app) == "<App routes=1>"


async def test_redirect_without_raw_path_uses_the_decoded_path() -> None:
    scope = http_scope("/app/items/", root_path="/app", query_string=b"q=1")
    del scope["raw_path"]
    recorder = await call(_slash_app(), scope)
    assert recorder.status == 308
    assert recorder.header(b"location") == [b"/app/items?q=1"]


def test_encoded_slash_at_the_end_is_not_a_trailing_slash() -> None:
    client = TestClient(_slash_app(), follow_redirects=False)
    response = client.get("/files/a%2F")
    assert response.status_code == 200
    assert response.text == "a/"


def test_app_middleware_and_repr_of_asgi_middleware() -> None:
    from joey import Middleware

    calls: list[str] = []

    async def listed(request: Request, call_next: Any) -> Response:
        calls.append("listed")
        response: Response = await call_next(request)
        response.headers["x-listed"] = "1"
        return response

    async def added(request: Request, call_next: Any) -> Response:
        calls.append("added")
        return await call_next(request)  # type: ignore[no-any-return]

    app = App(middleware=[listed])
    app.add_middleware(added)  # around those added before: outermost (Starlette's order)

    @app.get("/")
    async def index() -> str:
        return "ok"

    assert app.handler_middleware == [added, listed]
    assert TestClient(app).get("/").headers["x-listed"] == "1"
    assert calls == ["added", "listed"]
    from joey.middleware import CORSMiddleware

    assert repr(Middleware(CORSMiddleware, max_age=1, allow_origins=["*"])) == (
        "Middleware('CORSMiddleware', **{'max_age': 1, 'allow_origins': ['*']})")


def test_unmatched_exception_with_handlers_registered_is_500() -> None:
    app = App()

    @app.exception_handler(KeyError)
    async def keys(request: Request, exc: KeyError) -> Response:
        return PlainTextResponse("key", status_code=400)  # pragma: no cover

    @app.get("/")
    async def index() -> None:
        raise ValueError("not a key error")

    assert TestClient(app, raise_server_exceptions=False).get("/").status_code == 500


async def test_lifespan_must_start_with_startup() -> None:
    from .asgi import Recorder

    app = App()
    app.freeze()  # compiled already, so the message is read by the lifespan
    recorder = Recorder([{"type": "lifespan.shutdown"}])
    with pytest.raises(RuntimeError, match=r"Expected lifespan\.startup"):
        await app({"type": "lifespan"}, recorder.receive, recorder.send)


def test_root_path_not_found_is_not_redirected() -> None:
    app = App()

    @app.get("/x")
    async def x() -> str:
        return "x"

    assert TestClient(app, follow_redirects=False).get("/").status_code == 404


def test_asgi_middleware_is_built_once_even_when_overrides_change() -> None:
    instances: list[object] = []

    class Counting:
        def __init__(self, app: ASGIApp) -> None:
            self.app = app
            self.requests = 0
            instances.append(self)

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                self.requests += 1
            await self.app(scope, receive, send)

    app = App(asgi_middleware=[Middleware(Counting)])

    @app.get("/a")
    async def a() -> str:
        return "a"

    async def real() -> str:
        return "real"

    async def fake() -> str:
        return "fake"

    @app.get("/b")
    async def b(value: Annotated[str, Depends(real)]) -> str:
        return value

    with TestClient(app) as client:
        assert client.get("/a").text == "a"
        app.dependency_overrides[real] = fake  # the plans compile again; the stack stays
        assert client.get("/b").text == "fake"
        assert client.get("/a").text == "a"
    assert len(instances) == 1
    assert instances[0].requests == 3  # type: ignore[attr-defined]


# --- compile once, then freeze ----------------------------------------------------------------

# Module-level, as routers usually are: included into many apps, it must keep none alive.
shared = Router(prefix="/shared")


@shared.get("/ping")
async def ping() -> str:
    return "pong"


async def test_a_router_included_into_100_apps_keeps_none_of_them_alive() -> None:
    refs = []
    for _ in range(100):  # called directly: a TestClient would be kept until the test ends
        app = App()
        app.include_router(shared)
        assert (await call(app, http_scope("/shared/ping"))).body == b"pong"
        refs.append(weakref.ref(app))
    del app
    gc.collect()
    assert [ref for ref in refs if ref() is not None] == []


class Tagging:
    """ASGI middleware that marks every response, to see whether it runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def tagged(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message["headers"], (b"x-tagged", b"1")]
            await send(message)

        await self.app(scope, receive, tagged)  # type: ignore[arg-type]


def _started_app() -> tuple[App, TestClient]:
    app = App()

    @app.get("/")
    async def index() -> str:
        return "ok"

    client = TestClient(app)
    assert client.get("/").text == "ok"  # the first request starts the app
    return app, client


def test_asgi_middleware_appended_after_startup_is_refused_not_ignored() -> None:
    app, client = _started_app()
    with pytest.raises(LateDeclaration) as refused:
        app.asgi_middleware.append(Middleware(Tagging))
    message = str(refused.value)
    assert "Middleware('Tagging', **{})" in message
    assert "the ASGI middleware of the app" in message
    assert "Declare ASGI middleware before the app starts" in message
    assert "build a new App" in message
    with pytest.raises(LateDeclaration, match="'asgi_middleware' of the app"):
        app.asgi_middleware = [Middleware(Tagging)]
    assert app.asgi_middleware == []
    assert "x-tagged" not in client.get("/").headers


def test_asgi_middleware_declared_before_startup_runs() -> None:
    app = App()
    app.asgi_middleware.append(Middleware(Tagging))

    @app.get("/")
    async def index() -> str:
        return "ok"

    assert TestClient(app).get("/").headers["x-tagged"] == "1"


async def _handler() -> str:
    return "late"


async def _handler_middleware(request: Request, call_next: Any) -> Response:
    return await call_next(request)  # type: ignore[no-any-return]


async def _on_error(request: Request, exc: Exception) -> Response:
    return PlainTextResponse("handled")  # pragma: no cover - never registered


LATE_DECLARATIONS: dict[str, tuple[Callable[[App], Any], str]] = {
    "route": (lambda app: app.get("/late")(_handler), "Declare routes before"),
    "websocket route": (lambda app: app.websocket("/ws")(_handler), "Declare routes before"),
    "add_route": (lambda app: app.router.add_route(__import__("joey").Route("/r", _handler)),
                  "Declare routes before"),
    "include_router": (lambda app: app.include_router(Router(prefix="/more")),
                       "Declare included routers before"),
    "mount": (lambda app: app.mount("/static", App()), "Declare mounts before"),
    "add_middleware": (lambda app: app.add_middleware(_handler_middleware),
                       "Declare middleware before"),
    "middleware decorator": (lambda app: app.middleware(_handler_middleware),
                             "Declare middleware before"),
    "router middleware": (lambda app: app.router.middleware.insert(0, _handler_middleware),
                          "Declare middleware before"),
    "app dependencies": (lambda app: app.router.dependencies.append(Depends(_handler)),
                         "Declare dependencies before"),
    "asgi_middleware extend": (lambda app: app.asgi_middleware.extend([Middleware(Tagging)]),
                               "Declare ASGI middleware before"),
    "exception_handler": (lambda app: app.exception_handler(KeyError)(_on_error),
                          "Declare exception handlers before"),
    "exception_handlers item": (lambda app: app.exception_handlers.update({KeyError: _on_error}),
                                "Declare exception handlers before"),
    "exception_handlers del": (lambda app: app.exception_handlers.clear(),
                               "Declare exception handlers before"),
    "on_startup": (lambda app: app.on_startup(_handler), "Declare startup hooks before"),
    "on_shutdown": (lambda app: app.on_shutdown(_handler), "Declare shutdown hooks before"),
    "debug": (lambda app: setattr(app, "debug", True), "Set debug before"),
    "max_body_size": (lambda app: setattr(app, "max_body_size", 10), "Set max_body_size before"),
    "router": (lambda app: setattr(app, "router", Router()), "Set router before"),
}


@pytest.mark.parametrize("declare", LATE_DECLARATIONS, ids=list(LATE_DECLARATIONS))
def test_a_late_declaration_is_refused_with_what_to_do_instead(declare: str) -> None:
    app, client = _started_app()
    routes_before = app.routes
    change, advice = LATE_DECLARATIONS[declare]
    with pytest.raises(LateDeclaration) as refused:
        change(app)
    message = str(refused.value)
    assert f"{advice} the app starts" in message
    assert "in tests, build a new App" in message
    assert "app.dependency_overrides may change after startup" in message
    # nothing was half-applied: the app serves and describes what it did before
    assert [r.path for r in app.routes] == [r.path for r in routes_before]
    assert client.get("/").text == "ok"
    assert client.get("/late").status_code == 404
    assert app.exception_handlers == {}
    assert app.debug is False


def test_the_refusal_names_the_route_and_the_handler_middleware() -> None:
    app, _ = _started_app()
    with pytest.raises(LateDeclaration, match=r"<Route GET /late → _handler> refused\. "
                                              r"Cannot change the routes of the app"):
        app.get("/late")(_handler)
    with pytest.raises(LateDeclaration, match=r"test_app\._handler_middleware \(.*test_app\.py:"):
        app.add_middleware(_handler_middleware)


@pytest.mark.parametrize("start", ["first request", "lifespan", "freeze"])
def test_every_way_of_starting_freezes_the_declarations(start: str) -> None:
    app = App()

    @app.get("/")
    async def index() -> str:
        return "ok"

    if start == "first request":
        assert TestClient(app).get("/").text == "ok"
    elif start == "lifespan":
        with TestClient(app):
            pass
    else:
        app.freeze()
    assert app.frozen
    with pytest.raises(LateDeclaration, match="Declare routes before the app starts"):
        app.get("/late")(_handler)


def test_a_router_freezes_with_the_first_app_that_starts_with_it() -> None:
    child = Router(prefix="/child")
    parent = Router(prefix="/parent")
    parent.include_router(child)

    @child.get("/x")
    async def x() -> str:
        return "x"

    first, second = App(), App()
    first.include_router(parent)
    second.include_router(parent)  # included, not started: both may still change
    second.include_router(Router(prefix="/own"))
    assert TestClient(first).get("/parent/child/x").text == "x"
    for router in (parent, child):
        with pytest.raises(LateDeclaration, match=r"of <Router prefix='/(parent|child)'.*"
                                                  r"\(included in an app\)"):
            router.get("/y")(x)
    with pytest.raises(LateDeclaration, match="Declare included routers before"):
        parent.include_router(Router())
    with pytest.raises(LateDeclaration, match="Set prefix before"):
        child.prefix = "/moved"
    # the second app, not started, may still declare its own routes, and serves the shared ones
    second.get("/late")(_handler)
    client = TestClient(second)
    assert client.get("/parent/child/x").text == "x"
    assert client.get("/late").text == "late"


def test_dependency_overrides_set_after_startup_apply_and_unset() -> None:
    app = App()

    async def real() -> str:
        return "real"

    async def fake(q: str = "fake") -> str:  # its own parameters: read from the request
        return q

    @app.get("/")
    async def index(value: Annotated[str, Depends(real)]) -> str:
        return value

    with TestClient(app) as client:
        assert client.get("/").text == "real"
        app.dependency_overrides[real] = fake
        assert client.get("/").text == "fake"
        assert client.get("/?q=other").text == "other"
        assert app.routes[0].dependencies[0].function is fake
        del app.dependency_overrides[real]
        assert client.get("/?q=other").text == "real"
        app.dependency_overrides = {real: fake}
        assert client.get("/").text == "fake"
        app.dependency_overrides.clear()
        assert client.get("/").text == "real"
        assert app.routes[0].dependencies[0].function is real


def test_reading_the_route_model_before_startup_changes_nothing() -> None:
    built: list[object] = []

    class Recording(Tagging):
        def __init__(self, app: ASGIApp) -> None:
            super().__init__(app)
            built.append(self)

    app = App(asgi_middleware=[Middleware(Recording)])

    @app.get("/a", name="a")
    async def a() -> str:
        return "a"

    assert [route.path for route in app.routes] == ["/a"]
    assert app.url_path_for("a") == "/a"
    assert app.mounts == []
    assert built == []  # no ASGI middleware made
    assert not app.frozen

    @app.get("/b", name="b")  # still open to declarations
    async def b() -> str:
        return "b"

    app.mount("/m", App())
    assert [route.path for route in app.routes] == ["/a", "/b"]
    assert [mount.path for mount in app.mounts] == ["/m"]
    client = TestClient(app)
    assert client.get("/b").text == "b"
    assert len(built) == 1
    # after startup, the model is the one the engine runs: the same objects on every read
    assert all(x is y for x, y in zip(app.routes, app.routes, strict=True))


async def _real() -> str:
    return "real"


async def _fake() -> str:
    return "fake"


def _app_with_shared_routes(*, handles_key_errors: bool) -> App:
    app = App()
    app.include_router(shared)

    @app.get("/dep")
    async def dep(value: Annotated[str, Depends(_real)]) -> str:
        return value

    @app.get("/boom")
    async def boom() -> str:
        raise KeyError("x")

    if handles_key_errors:
        @app.exception_handler(KeyError)
        async def keys(request: Request, exc: KeyError) -> Response:
            return PlainTextResponse("handled", status_code=400)

    return app


async def test_two_apps_in_one_process_are_independent() -> None:
    first = _app_with_shared_routes(handles_key_errors=True)
    second = _app_with_shared_routes(handles_key_errors=False)

    async def get(app: App, path: str) -> Recorder:  # directly: no client keeps the app alive
        return await call(app, http_scope(path))

    assert (await get(first, "/shared/ping")).body == b"pong"
    assert not second.frozen  # the first app starting froze only the first app (and shared)
    first.dependency_overrides[_real] = _fake
    assert (await get(first, "/dep")).body == b"fake"
    assert (await get(second, "/dep")).body == b"real"
    assert (await get(first, "/boom")).body == b"handled"
    two = TestClient(second, raise_server_exceptions=False)
    assert two.get("/boom").status_code == 500
    ref = weakref.ref(first)
    del first
    gc.collect()
    assert ref() is None
    assert two.get("/shared/ping").text == "pong"
    assert two.get("/dep").text == "real"
