"""The public route model: app.routes, made from the plans the engine runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
import pytest
from msgspec import Meta

from joey import App, Body, Cookie, Depends, Header, Query, Request, Router, WebSocket
from joey.exceptions import (
    BadRequest,
    Conflict,
    ContentTooLarge,
    Forbidden,
    Unauthorized,
    UnprocessableContent,
    UnsupportedMediaType,
)
from joey.params import MISSING, ParamInfo
from joey.pipelines import CallNext
from joey.ratelimit import RateLimit
from joey.responses import Response
from joey.routeinfo import DependencyInfo, RouteInfo, status_of
from joey.testing import TestClient

from .asgi import close_test_clients  # noqa: F401 - autouse fixture
from .openapi.errors_app import CASES, answered
from .openapi.errors_app import build as build_every_kind


class Note(msgspec.Struct):
    title: str
    body: str = ""


async def tracing(request: Request, call_next: CallNext) -> Response:
    return await call_next(request)


def current_user(authorization: Annotated[str, Header()]) -> str:
    return authorization


async def database() -> AsyncIterator[str]:
    yield "db"


def build() -> App:
    app = App()
    api = Router(prefix="/api", tags=["notes"], middleware=[tracing])

    @api.post("/notes/{book:int}", status_code=201, tags=["write"])
    async def create_note(
        book: int,
        note: Note,
        user: Annotated[str, Depends(current_user)],
        db: Annotated[str, Depends(database, scope="app")],
        dry_run: bool = False,
        limit: Annotated[int, Meta(ge=1, le=50), Query("max")] = 10,
        session: Annotated[str | None, Cookie()] = None,
    ) -> Note:
        """Create a note.

        The rest of the description.
        """
        return note

    @app.get("/raw")
    async def raw(request: Request) -> str:
        return "raw"

    @app.post("/bytes")
    async def upload(data: Annotated[bytes, Body()]) -> dict[str, int]:
        return {"size": len(data)}

    @app.websocket("/ws/{room}")
    async def chat(websocket: WebSocket, room: str) -> None:
        await websocket.accept()

    app.include_router(api)
    return app


def by_path(app: App) -> dict[str, RouteInfo]:
    return {route.path: route for route in app.routes}


def test_every_route_is_listed_with_its_declaration() -> None:
    routes = by_path(build())
    assert set(routes) == {"/api/notes/{book:int}", "/raw", "/bytes", "/ws/{room}"}
    note = routes["/api/notes/{book:int}"]
    assert note.methods == ("POST",) and not note.websocket
    assert note.name == "create_note"
    assert note.status_code == 201
    assert note.tags == ("notes", "write")
    assert note.middleware == (tracing,)
    assert note.path_params == {"book": int}
    assert note.return_type is Note
    assert note.summary == "Create a note."
    assert note.description == "Create a note.\n\nThe rest of the description."
    assert note.location.endswith(f"test_routeinfo.py:{build.__code__.co_firstlineno + 4}")
    assert note.max_body_size == 1024 * 1024
    ws = routes["/ws/{room}"]
    assert ws.websocket and ws.methods == () and ws.path_params == {"room": str}
    assert routes["/raw"].description is None and routes["/raw"].summary is None


def test_parameters_carry_source_key_type_default_and_constraints() -> None:
    note = by_path(build())["/api/notes/{book:int}"]
    params = {p.name: p for p in note.parameters}
    assert set(params) == {"book", "note", "dry_run", "limit", "session"}
    assert params["book"] == ParamInfo("book", "path", "book", int)
    assert params["note"].source == "body" and params["note"].annotation is Note
    assert params["note"].media_types == ("application/json",) and params["note"].required
    assert (params["dry_run"].source, params["dry_run"].default) == ("query", False)
    assert not params["dry_run"].required
    limit = params["limit"]
    assert (limit.source, limit.key, limit.default) == ("query", "max", 10)
    assert [(m.ge, m.le) for m in limit.constraints] == [(1, 50)]
    assert (params["session"].source, params["session"].key) == ("cookie", "session")
    assert params["book"].required and params["book"].default is MISSING


def test_dependencies_with_their_own_parameters() -> None:
    note = by_path(build())["/api/notes/{book:int}"]
    user, db = note.dependencies
    assert isinstance(user, DependencyInfo)
    assert (user.function, user.declared, user.scope) == (current_user, current_user, "request")
    assert [(p.source, p.key) for p in user.parameters] == [("header", "authorization")]
    assert db.scope == "app" and db.parameters == ()
    # What a request carries: the dependency's header, then the handler's own parameters.
    carried = [(p.source, p.key) for p in note.all_parameters()]
    assert carried == [("header", "authorization"), ("path", "book"), ("body", ""),
                       ("query", "dry_run"), ("query", "max"), ("cookie", "session")]
    assert note.body is not None and note.body.annotation is Note


def test_injected_values_are_not_request_parameters() -> None:
    routes = by_path(build())
    raw = routes["/raw"]
    assert [(p.name, p.source) for p in raw.parameters] == [("request", "request")]
    assert raw.all_parameters() == [] and raw.body is None
    upload = routes["/bytes"]
    assert upload.body is not None
    assert upload.body.media_types == ("application/octet-stream",)


def test_the_model_is_what_validates_requests() -> None:
    """Change the plan (an override) and the model follows: one reading, not two."""
    app = build()

    def fake_user(token: Annotated[str, Query()]) -> str:
        return token

    app.dependency_overrides[current_user] = fake_user
    note = by_path(app)["/api/notes/{book:int}"]
    user = note.dependencies[0]
    assert (user.function, user.declared) == (fake_user, current_user)
    assert [(p.source, p.key) for p in user.parameters] == [("query", "token")]
    with TestClient(app) as client:
        missing = client.post("/api/notes/1", json={"title": "t"})
        assert missing.status_code == 422
        assert [(e["loc"], e["name"]) for e in missing.json()["errors"]] == [("query", "token")]
        ok = client.post("/api/notes/1?token=me", json={"title": "t"})
        assert ok.status_code == 201


def test_routes_follow_changes() -> None:
    app = build()
    before = len(app.routes)

    @app.get("/late")
    async def late() -> str:
        return "late"

    assert len(app.routes) == before + 1
    assert app.routes[-1].path == "/late" or any(r.path == "/late" for r in app.routes)


def test_a_bad_signature_fails_when_the_model_is_read() -> None:
    app = App()

    @app.get("/")
    async def index(x: Annotated[Note, Query()]) -> str:
        return "never"

    with pytest.raises(TypeError, match="cannot read from a query string"):
        _ = app.routes


def test_model_objects_are_read_only() -> None:
    route = by_path(build())["/raw"]
    with pytest.raises(AttributeError):
        route.path = "/other"  # type: ignore[misc]
    param: Any = route.parameters[0]
    with pytest.raises(AttributeError):
        param.name = "x"


def test_the_route_model_names_every_error_the_engine_answers() -> None:
    """Issue #24: ``RouteInfo.errors`` is what each extractor, dependency, scheme and limit of
    the plan declares, and that is exactly what the engine answers: for a route of every
    kind, each modelled error is produced by a request, and no request (of a battery of
    hostile ones) gets an error the model does not name."""
    app = build_every_kind()
    routes = {route.path: route for route in app.routes}
    assert set(routes) == {case.template for case in CASES}
    client = TestClient(app)
    for case in CASES:
        modelled = {status_of(error) for error in routes[case.template].errors}
        assert modelled == answered(client, case) == set(case.triggers), case.template


def test_the_errors_of_the_route_model_are_classes_by_status() -> None:
    app = build_every_kind()
    routes = {route.path: route for route in app.routes}
    assert routes["/json"].errors == (BadRequest, ContentTooLarge, UnsupportedMediaType,
                                      UnprocessableContent)
    strict = routes["/strict"].errors
    assert [error.__name__ for error in strict] == ["RateLimitExceeded",
                                                    "RateLimitUnavailable"]
    assert routes["/scoped"].errors == (Unauthorized, Forbidden)
    assert routes["/conflict"].errors == (Conflict,)  # declared with raises=
    assert routes["/plain"].errors == () and routes["/injected"].errors == ()


def test_a_websocket_route_has_no_http_errors() -> None:
    ws = by_path(build())["/ws/{room}"]
    assert ws.errors == ()  # a failure refuses the handshake instead


def test_the_errors_follow_the_plan() -> None:
    """An override that reads nothing from the request takes its 422 away; one that is a
    rate limit brings its 429, and its 503 (a limit fails closed by default)."""
    app = build_every_kind()
    limit = RateLimit(5, 60)

    async def no_header() -> int:
        return 0

    count_header = next(d.declared for r in app.routes if r.path == "/dependency"
                        for d in r.dependencies)
    app.dependency_overrides[count_header] = no_header
    [route] = [r for r in app.routes if r.path == "/dependency"]
    assert route.errors == ()
    app.dependency_overrides[count_header] = limit
    [route] = [r for r in app.routes if r.path == "/dependency"]
    assert [error.__name__ for error in route.errors] == ["RateLimitExceeded",
                                                          "RateLimitUnavailable"]
