"""Declaring middleware the Starlette way: ``app.add_middleware(Cls, **options)``,
``@app.middleware("http")``, ``App(middleware=[Middleware(...)])``, each with Starlette's
meaning and order; mistakes refused where they are written (issue #26 §1)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from joey import App, CallNext, Middleware, NotFound, PlainTextResponse, Request, Response, Router
from joey.middleware import CORSMiddleware, SessionMiddleware
from joey.testing import LifespanError, TestClient
from joey.types import ASGIApp, Message, Receive, Scope, Send

from .asgi import close_test_clients  # noqa: F401 - autouse fixture

ORIGIN = "https://app.example.com"


class Stamp:
    """ASGI middleware: appends ``x-stamp: <name>`` to every answer (the inner one first)."""

    def __init__(self, app: ASGIApp, *, name: str) -> None:
        self.app, self.name = app, name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message["headers"], (b"x-stamp", self.name.encode())]
            await send(message)

        await self.app(scope, receive, stamped)


def mark(name: str) -> Any:
    """Handler middleware: appends ``x-mark: <name>`` after ``call_next`` (the inner first)."""

    async def marking(request: Request, call_next: CallNext) -> Response:
        response = await call_next(request)
        response.headers.append("x-mark", name)
        return response

    return marking


def _app(app: App) -> App:
    @app.get("/")
    async def index() -> str:
        return "ok"

    return app


def test_add_middleware_takes_a_class_and_its_options_as_in_starlette() -> None:
    app = _app(App())
    app.add_middleware(CORSMiddleware, allow_origins=[ORIGIN], allow_methods=["GET", "PUT"])
    client = TestClient(app)
    simple = client.get("/", headers={"origin": ORIGIN})
    assert simple.text == "ok"
    assert simple.headers["access-control-allow-origin"] == ORIGIN
    preflight = client.options("/", headers={"origin": ORIGIN,
                                             "access-control-request-method": "PUT"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-methods"] == "GET, PUT"
    assert app.asgi_middleware[0].cls is CORSMiddleware


def test_each_added_middleware_wraps_those_added_before() -> None:
    app = _app(App(asgi_middleware=[Middleware(Stamp, name="asgi_middleware")],
                   middleware=[mark("listed"), Middleware(Stamp, name="listed")]))
    app.add_middleware(Stamp, name="first added")
    app.add_middleware(Middleware(Stamp, name="second added"))
    app.add_middleware(mark("first added"))

    @app.middleware("http")
    async def decorated(request: Request, call_next: CallNext) -> Response:
        response = await call_next(request)
        response.headers.append("x-mark", "decorated")
        return response

    response = TestClient(app).get("/")
    # inner first: the last added is outermost; a list's first is outermost; every ASGI
    # middleware is outside every handler middleware
    assert response.headers.get_list("x-stamp") == [
        "listed", "asgi_middleware", "first added", "second added"]
    assert response.headers.get_list("x-mark") == ["listed", "first added", "decorated"]


def test_app_middleware_lists_are_outermost_first_as_in_starlette() -> None:
    app = _app(App(middleware=[mark("a"), mark("b"), Middleware(Stamp, name="x"),
                               Middleware(Stamp, name="y")]))
    response = TestClient(app).get("/")
    assert response.headers.get_list("x-mark") == ["b", "a"]  # "a" outermost: last to add
    assert response.headers.get_list("x-stamp") == ["y", "x"]
    assert [m.options["name"] for m in app.asgi_middleware] == ["x", "y"]


def test_a_middleware_class_without_its_required_options_is_refused_at_the_call() -> None:
    app = _app(App())
    with pytest.raises(TypeError) as refused:
        app.add_middleware(SessionMiddleware)
    # ("keyword-only" is in Python 3.13's wording of the same error)
    assert re.search(r"missing a required (keyword-only )?argument: 'secret_key'",
                     str(refused.value)), refused.value
    assert "app.add_middleware(SessionMiddleware, secret_key=...)" in str(refused.value)
    with pytest.raises(TypeError, match="cannot be made with these options: got an unexpected "
                                        "keyword argument 'allow_origin'"):
        app.add_middleware(CORSMiddleware, allow_origin=[ORIGIN])
    with pytest.raises(TypeError, match=r"missing a required (keyword-only )?argument: 'name'"):
        App(middleware=[Middleware(Stamp)])
    assert TestClient(app).get("/").text == "ok"  # nothing was half-added


def test_a_middleware_refusing_its_options_fails_the_startup_not_each_request() -> None:
    app = _app(App())
    app.add_middleware(CORSMiddleware)  # allows no origin at all
    with pytest.raises(LifespanError) as failed, TestClient(app):
        pass
    message = str(failed.value)
    assert "Middleware('CORSMiddleware', **{}) could not be made when the app started" in message
    assert "pass allow_origins=" in message


def test_the_http_middleware_decorator_works_as_in_fastapi() -> None:
    app = App()
    after_call_next: list[str] = []

    @app.exception_handler(KeyError)
    async def missing_key(request: Request, exc: KeyError) -> Response:
        return PlainTextResponse("no such key", status_code=409)

    @app.middleware("http")
    async def add_header(request: Request, call_next: CallNext) -> Response:
        response = await call_next(request)
        after_call_next.append(request.path)
        response.headers["x-seen"] = "yes"
        return response

    @app.get("/ok")
    async def ok() -> str:
        return "ok"

    @app.get("/missing")
    async def missing() -> str:
        raise NotFound("nothing")

    @app.get("/key")
    async def key() -> str:
        raise KeyError("k")

    @app.get("/boom")
    async def boom() -> str:
        raise RuntimeError("unexpected")

    client = TestClient(app, raise_server_exceptions=False)
    assert client.get("/ok").headers["x-seen"] == "yes"
    # call_next returns the answer to errors the app answers, as Starlette's does
    not_found = client.get("/missing")
    assert (not_found.status_code, not_found.headers["x-seen"]) == (404, "yes")
    assert not_found.json()["detail"] == "nothing"
    handled = client.get("/key")
    assert (handled.status_code, handled.text, handled.headers["x-seen"]) == (
        409, "no such key", "yes")
    assert client.get("/nowhere").headers["x-seen"] == "yes"  # no route: a 404 too
    # an unexpected error leaves call_next (as in Starlette) and is the 500 after it
    crashed = client.get("/boom")
    assert crashed.status_code == 500
    assert "x-seen" not in crashed.headers
    assert after_call_next == ["/ok", "/missing", "/key", "/nowhere"]


MISTAKES: dict[str, tuple[Any, str]] = {
    "websocket kind": (lambda app: app.middleware("websocket"), 'only "http" exists'),
    "options with a function": (lambda app: app.add_middleware(mark("a"), name="x"),
                                "options are for an ASGI middleware class"),
    "a function that is not middleware": (lambda app: app.add_middleware(lambda request: None),
                                          "cannot be called as handler middleware"),
    "a decorated function that is not middleware": (
        lambda app: app.middleware("http")(lambda: None), "cannot be called as handler"),
    "a handler middleware class": (lambda app: app.add_middleware(Marker),
                                   "is a class. Handler middleware is a function"),
    "a class in a router": (lambda app: Router(middleware=[Stamp]), "pass an instance"),
    "ASGI middleware in a router": (lambda app: Router(middleware=[Middleware(Stamp, name="x")]),
                                    "is not middleware"),
}


class Marker:
    async def __call__(self, request: Request, call_next: CallNext) -> Response:
        return await call_next(request)  # pragma: no cover


@pytest.mark.parametrize("mistake", list(MISTAKES), ids=list(MISTAKES))
def test_middleware_mistakes_are_refused_where_they_are_written(mistake: str) -> None:
    declare, message = MISTAKES[mistake]
    app = _app(App())
    with pytest.raises((TypeError, ValueError), match=message):
        declare(app)
    assert TestClient(app).get("/").text == "ok"


def test_a_handler_middleware_object_is_added_as_before() -> None:
    app = _app(App())
    marker = Marker()
    app.add_middleware(marker)
    assert app.handler_middleware == [marker]
    assert TestClient(app).get("/").text == "ok"
