"""How a handler is called: its phases as data (joey.params.phases) and the runners that run
them (joey.params.run). Security → extraction → dependencies → handler → conversion, for every
shape of call, and every shape answering exactly like the runner of every phase."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Annotated, Any

import msgspec
import pytest

from joey import App, BackgroundTasks, Body, Depends, Header, HTTPError, Query, Request, WebSocket
from joey.exceptions import Unauthorized
from joey.params.phases import PHASES, SHAPES, CallPlan, describe_call
from joey.params.plan import PlanBuilder
from joey.params.run import RUNNERS, AppScopedValues, assemble, compile_caller
from joey.responses import Response, to_response
from joey.security import BearerCredentials, HTTPBearer, Security
from joey.testing import TestClient

from .asgi import Recorder, body_messages, call, close_test_clients, http_scope  # noqa: F401

#: what user code saw, in order: the guards, custom extractors and decoders, dependencies,
#: handlers, and the conversion of a handler's result (Echo.__post_init__)
events: list[str] = []


@pytest.fixture(autouse=True)
def _fresh_events() -> Iterator[None]:
    events.clear()
    yield
    events.clear()


class Echo(msgspec.Struct):
    """What every handler below returns as a dict: the conversion phase makes it one."""

    shape: str
    values: list[Any] = []

    def __post_init__(self) -> None:
        events.append("conversion")


def read_q(query: Any) -> str:
    """A custom extractor: user code that runs in the extraction phase."""
    events.append("extraction")
    value: str = query.get("q", "")
    if value == "bad":
        raise ValueError("q may not be 'bad'")
    return value


def read_note(raw: bytes) -> str:
    events.append("extraction")
    if not raw:
        raise ValueError("a note is required")
    return raw.decode()


async def guard(x_key: Annotated[str, Header()] = "") -> str:
    events.append("security")
    if x_key != "k":
        raise Unauthorized("Send x-key: k.", headers={"www-authenticate": "Key"})
    return x_key


async def dependency(q: Annotated[str, Query(extractor=read_q)]) -> str:
    events.append("dependencies")
    return q.upper()


Q = Annotated[str, Query(extractor=read_q)]
NOTE = Annotated[str, Body(decoder=read_note)]


async def bare() -> Echo:
    events.append("handler")
    return {"shape": "bare"}  # type: ignore[return-value]


async def with_connection(request: Request) -> Echo:
    events.append("handler")
    return {"shape": "with_connection", "values": [request.url.path]}  # type: ignore[return-value]


async def with_path_values(n: int) -> Echo:
    events.append("handler")
    return {"shape": "with_path_values", "values": [n]}  # type: ignore[return-value]


async def simple(q: Q, n: int = 1) -> Echo:
    events.append("handler")
    return {"shape": "simple", "values": [q, n]}  # type: ignore[return-value]


def simple_sync(q: Q, n: int = 1) -> Echo:
    events.append("handler")
    return {"shape": "simple", "values": [q, n]}  # type: ignore[return-value]


async def extracting(q: Q, note: NOTE) -> Echo:
    events.append("handler")
    return {"shape": "extracting", "values": [q, note]}  # type: ignore[return-value]


async def make_prefix() -> str:
    """An app-scoped dependency: made once per lifespan (or, without one, on first use)."""
    events.append("dependencies")
    return "app"


PREFIX = Annotated[str, Depends(make_prefix, scope="app")]


async def app_values(prefix: PREFIX, q: Q, note: NOTE) -> Echo:
    events.append("handler")
    return {"shape": "app_values", "values": [prefix, q, note]}  # type: ignore[return-value]


async def full(d: Annotated[str, Depends(dependency)], note: NOTE) -> Echo:
    events.append("handler")
    return {"shape": "full", "values": [d, note]}  # type: ignore[return-value]


async def guarded(key: Annotated[str, Security(guard)], d: Annotated[str, Depends(dependency)],
                  note: NOTE) -> Echo:
    events.append("handler")
    return {"shape": "guarded", "values": [key, d, note]}  # type: ignore[return-value]


@dataclasses.dataclass
class Case:
    shape: str
    handler: Callable[..., Any]
    phases: tuple[str, ...]
    #: what user code records for a good request, in order
    events: list[str]
    route: str = "/x"
    path_params: dict[str, Any] = dataclasses.field(default_factory=dict)
    url: str = "/x?q=ok"
    method: str = "GET"
    body: bytes = b""

    @property
    def id(self) -> str:
        return self.handler.__name__

    @property
    def values(self) -> list[Any]:
        return {"with_connection": ["/x"], "with_path_values": [5], "simple": ["ok", 1],
                "extracting": ["ok", "hi"], "app_values": ["app", "ok", "hi"],
                "full": ["OK", "hi"],
                "guarded": ["k", "OK", "hi"]}.get(self.shape, [])


CASES = [
    Case("bare", bare, ("handler", "conversion"), ["handler", "conversion"]),
    Case("with_connection", with_connection, ("extraction", "handler", "conversion"),
         ["handler", "conversion"]),
    Case("with_path_values", with_path_values, ("extraction", "handler", "conversion"),
         ["handler", "conversion"], route="/p/{n:int}", path_params={"n": 5}, url="/p/5"),
    Case("simple", simple, ("extraction", "handler", "conversion"),
         ["extraction", "handler", "conversion"]),
    Case("simple", simple_sync, ("extraction", "handler", "conversion"),
         ["extraction", "handler", "conversion"]),
    Case("extracting", extracting, ("extraction", "handler", "conversion"),
         ["extraction", "extraction", "handler", "conversion"], method="POST", body=b"hi"),
    # the app-scoped value is made at startup, before the request
    Case("app_values", app_values, ("extraction", "dependencies", "handler", "conversion"),
         ["dependencies", "extraction", "extraction", "handler", "conversion"], method="POST",
         body=b"hi"),
    Case("full", full, ("extraction", "dependencies", "handler", "conversion"),
         ["extraction", "extraction", "dependencies", "handler", "conversion"],
         method="POST", body=b"hi"),
    Case("guarded", guarded, PHASES,
         ["security", "extraction", "extraction", "dependencies", "handler", "conversion"],
         method="POST", body=b"hi"),
]
CASE_IDS = [case.id for case in CASES]


def describe(case: Case) -> CallPlan:
    types = {name: type(value) for name, value in case.path_params.items()}
    plan = PlanBuilder({}).build(case.handler, types)
    return describe_call(plan, convert, frozenset(types))


def convert(value: Any) -> Response:
    """The conversion the compiler puts in place for ``-> Echo``."""
    return to_response(msgspec.convert(value, Echo))


def app_for(case: Case) -> App:
    app = App()
    app.route(case.route, methods=[case.method])(case.handler)
    return app


def sync_handler_returns(value: Any) -> Callable[[], Any]:
    def handler() -> Any:
        return value

    return handler


# --- the description: which phases, which shape ----------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_each_kind_of_handler_is_described_with_its_phases_and_shape(case: Case) -> None:
    call_plan = describe(case)
    assert call_plan.shape == case.shape
    assert call_plan.phases == case.phases
    assert repr(call_plan).startswith(f"<CallPlan {case.shape} ")
    runner = compile_caller(PlanBuilder({}).build(case.handler, {
        name: type(value) for name, value in case.path_params.items()}),
        AppScopedValues(), to_response, frozenset(case.path_params))
    assert runner.__name__ == f"call_{case.shape}"


async def _keyword_only(*, request: Request) -> str:
    return request.url.path


async def _converted_path(n: str) -> str:  # the router makes an int: converted, so validated
    return n


async def _app_scoped(value: Annotated[int, Depends(lambda: 1, scope="app")]) -> int:
    return value


def _app_scoped_sync(value: Annotated[int, Depends(lambda: 1, scope="app")]) -> int:
    return value


async def _app_scoped_and_request(value: Annotated[int, Depends(lambda: 1, scope="app")],
                                  other: Annotated[int, Depends(lambda: 2)]) -> int:
    return value + other


async def _optional_key(key: Annotated[BearerCredentials | None, Security(HTTPBearer())]) -> str:
    return "x"


class _Endpoint:
    async def __call__(self, request: Request) -> str:
        return request.url.path


async def _echo(websocket: WebSocket) -> None:
    await websocket.accept()


@pytest.mark.parametrize(("handler", "path_params", "shape", "reads"), [
    (sync_handler_returns("x"), {}, "simple", "nothing"),
    (_keyword_only, {}, "simple", "values"),
    (_Endpoint(), {}, "with_connection", "connection"),
    (_converted_path, {"n": int}, "simple", "values"),
    (_app_scoped, {}, "app_values", "nothing"),
    (_app_scoped_sync, {}, "full", "nothing"),
    (_app_scoped_and_request, {}, "full", "nothing"),
    (_optional_key, {}, "guarded", "nothing"),
], ids=["sync-no-parameters", "keyword-only-request", "an-instance", "converted-path-value",
        "app-scoped", "app-scoped-sync-handler", "app-and-request-scoped", "security-only"])
def test_the_edges_of_the_shape_table(handler: Callable[..., Any], path_params: dict[str, type],
                                      shape: str, reads: str) -> None:
    call_plan = describe_call(PlanBuilder({}).build(handler, path_params), to_response,
                              frozenset(path_params))
    assert (call_plan.shape, call_plan.reads) == (shape, reads)


def test_a_websocket_handler_is_described_the_same_way() -> None:
    plan = PlanBuilder({}, websocket=True).build(_echo, {})
    assert describe_call(plan, lambda value: None).shape == "with_connection"


def test_every_shape_has_a_runner_and_the_last_one_runs_anything() -> None:
    assert {shape.name for shape in SHAPES} == set(RUNNERS)
    *_, last = SHAPES
    assert last.name == "guarded"
    assert (last.security, last.reads, last.dependencies, last.handler) == (None,) * 4


# --- the phases run in their order, in every shape -------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_every_shape_runs_its_phases_in_order(case: Case) -> None:
    with TestClient(app_for(case)) as client:
        response = client.request(case.method, case.url, content=case.body,
                                  headers={"x-key": "k"})
        assert response.status_code == 200, response.text
        assert response.json() == {"shape": case.shape, "values": case.values}
    assert events == case.events


def request_for(case: Case, url: str, body: bytes, headers: dict[str, str]) -> Request:
    path, _, query = url.partition("?")
    scope = http_scope(path, method=case.method, query_string=query.encode(),
                       headers=[(k.encode(), v.encode()) for k, v in headers.items()])
    return Request(scope, Recorder(body_messages(body)).receive, app=App(),
                   path_params=dict(case.path_params))


async def outcome(case: Case, shape: str | None, url: str, body: bytes,
                  headers: dict[str, str]) -> tuple[Any, ...]:
    """What the runner of ``shape`` (the case's own: None) answers, and what user code saw."""
    runner = assemble(describe(case), AppScopedValues(), shape)
    request = request_for(case, url, body, headers)
    events.clear()
    try:
        response: Response = await runner(request)
        answer: tuple[Any, ...] = (response.status_code, response.body)
    except HTTPError as exc:
        answer = (exc.status_code, exc.detail, exc.extra, exc.headers)
    finally:
        await request.run_cleanups()
    return (*answer, list(events))


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize(("query", "body", "key"), [
    ("q=ok", b"hi", "k"), ("q=bad", b"", "k"), ("q=bad", b"hi", "nope"), ("", b"", ""),
], ids=["good", "invalid", "refused", "empty"])
async def test_every_shape_answers_like_the_runner_of_every_phase(
        case: Case, query: str, body: bytes, key: str) -> None:
    url = f"{case.url.partition('?')[0]}?{query}"
    headers = {"x-key": key} if key else {}
    own = await outcome(case, None, url, body, headers)
    every_phase = await outcome(case, "guarded", url, body, headers)
    assert own == every_phase


async def test_a_refused_request_never_reads_its_body() -> None:
    bearer = HTTPBearer()
    app = App()

    @app.post("/guarded")
    async def handler(token: Annotated[BearerCredentials, Security(bearer)], note: NOTE,
                      q: Q) -> str:
        return note

    @app.post("/route-level", dependencies=[Security(guard)])
    async def route_level(note: NOTE) -> str:
        return note

    for path in ("/guarded", "/route-level"):
        events.clear()
        recorder = await call(app, http_scope(path, method="POST", query_string=b"q=bad"),
                              body_messages(b"a note"))
        assert recorder.status == 401, recorder.body
        assert recorder.received == 0  # the body was never asked for
        assert events == (["security"] if path == "/route-level" else [])  # no extraction


async def test_one_422_lists_the_handler_and_its_dependencies_before_any_of_them_runs() -> None:
    async def pages(page: int) -> int:
        events.append("pages")
        return page

    async def session(x_token: Annotated[int, Header()],
                      page: Annotated[int, Depends(pages)]) -> AsyncIterator[str]:
        events.append("session")
        yield "s"
        events.append("session closed")

    app = App()

    @app.get("/items", dependencies=[Security(guard)])
    async def items(limit: int, s: Annotated[str, Depends(session)]) -> str:
        events.append("handler")
        return s

    recorder = await call(app, http_scope("/items", query_string=b"limit=x&page=y",
                                          headers=[(b"x-key", b"k"), (b"x-token", b"t")]))
    assert recorder.status == 422
    errors = msgspec.json.decode(recorder.body)["errors"]
    assert [error["location"] for error in errors] == [
        ["query", "page"], ["header", "x-token"], ["query", "limit"]]
    assert events == ["security"]  # the guard ran; no other dependency, no handler


# --- regressions: what the hand-written shapes each did their own way ----------------------


def test_teardown_runs_before_background_tasks_on_a_guarded_route() -> None:
    # the guarded shape registered its teardown before extraction made the BackgroundTasks,
    # and cleanups run newest first: the background ran before the teardown there, unlike
    # every other shape and unlike the docs ("teardowns run before the BackgroundTasks")
    def db() -> Iterator[str]:
        yield "db"
        events.append("teardown")

    app = App()

    @app.get("/plain")
    async def plain(d: Annotated[str, Depends(db)], tasks: BackgroundTasks) -> str:
        tasks.add_task(events.append, "background")
        return d

    @app.get("/guarded", dependencies=[Security(guard)])
    async def guarded_route(d: Annotated[str, Depends(db)], tasks: BackgroundTasks) -> str:
        tasks.add_task(events.append, "background")
        return d

    with TestClient(app) as client:
        assert client.get("/plain").text == "db"
        assert events == ["teardown", "background"]
        events.clear()
        assert client.get("/guarded", headers={"x-key": "k"}).text == "db"
        assert events == ["security", "teardown", "background"]


def test_a_generator_handler_is_refused_at_startup() -> None:
    # it was a 500 (an assertion) without dependencies and its first value with them
    async def first(x: Annotated[str, Depends(dependency)]) -> AsyncIterator[str]:
        yield "first"

    def plain() -> Iterator[str]:
        yield "first"

    for handler in (first, plain):
        app = App()
        app.get("/x")(handler)
        with pytest.raises(TypeError, match=rf"{handler.__name__} .*the handler is a generator "
                                            r"function.*StreamingResponse"):
            app.routes  # noqa: B018 - builds the app


def test_a_keyword_only_request_parameter_is_passed_by_name() -> None:
    # the request-only fast path passed it positionally: a TypeError, a 500
    app = App()
    app.get("/x")(_keyword_only)
    with TestClient(app) as client:
        response = client.get("/x")
        assert response.status_code == 200
        assert response.text == "/x"


def test_app_scoped_values_are_made_once_looked_up_after_and_again_per_lifespan() -> None:
    # the app_values runner looks them up: made at startup, made again after a restart,
    # and on the first request (in call order: a nested one first) when no lifespan ran
    made: list[int] = []

    async def config() -> AsyncIterator[int]:
        made.append(len(made) + 1)
        yield made[-1]
        events.append("closed")

    async def client(n: Annotated[int, Depends(config, scope="app")]) -> str:
        return f"client{n}"

    async def audit() -> None:
        events.append("audit")

    async def handler(c: Annotated[str, Depends(client, scope="app")], q: int = 0) -> str:
        return f"{c} {q}"

    route_level = (Depends(audit, scope="app"),)
    plan = PlanBuilder({}).build(handler, {}, route_level, namespace=locals())
    assert describe_call(plan, to_response).shape == "app_values"
    app = App()
    app.get("/x", dependencies=list(route_level))(handler)

    for lifespan in (1, 2):
        with TestClient(app) as test_client:
            assert test_client.get("/x?q=4").text == f"client{lifespan} 4"
            assert test_client.get("/x").text == f"client{lifespan} 0"
    assert made == [1, 2]
    assert events == ["audit", "closed", "audit", "closed"]
    events.clear()

    async def without_lifespan() -> None:  # the first request makes them
        recorder = await call(app, http_scope("/x", query_string=b"q=3"))
        assert (recorder.status, recorder.body) == (200, b"client3 3")
        recorder = await call(app, http_scope("/x", query_string=b"q=no"))
        assert recorder.status == 422
        assert (made, events) == ([1, 2, 3], ["audit"])

    asyncio.run(without_lifespan())
