"""Typed handler parameters, bodies, validation errors and dependency injection."""

from __future__ import annotations

import abc
import dataclasses
import enum
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any, Literal, Protocol, TypedDict, get_args

import msgspec
import pydantic
import pytest
from msgspec import Meta

from joey import (
    App,
    BackgroundTasks,
    Body,
    Cookie,
    Depends,
    Form,
    Header,
    HTTPError,
    Query,
    Request,
    Router,
    Security,
    StreamingResponse,
)
from joey.caching import Caching
from joey.params.returns import return_converter
from joey.ratelimit import RateLimit
from joey.security.jwt import JWTBearer
from joey.testing import LifespanError, TestClient


class Item(msgspec.Struct):
    name: str
    price: float
    tags: list[str] = []


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Movie(TypedDict):
    title: str
    year: int


class User(pydantic.BaseModel):
    name: str
    age: int = pydantic.Field(ge=0)


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


def client_for(app: App) -> TestClient:
    return TestClient(app)


# --- path, query, header, cookie ------------------------------------------------------------


def make_params_app() -> App:
    app = App()

    @app.get("/items/{item_id:int}")
    async def item(
        item_id: int,
        q: str | None = None,
        limit: Annotated[int, Meta(ge=1, le=100)] = 10,
        flag: bool = False,
        tags: list[str] = [],  # noqa: B006 - never mutated
        color: Color = Color.RED,
        order: Literal["asc", "desc"] = "asc",
    ) -> dict[str, Any]:
        return {"item_id": item_id, "q": q, "limit": limit, "flag": flag, "tags": tags,
                "color": color.value, "order": order}

    @app.get("/typed-path/{value}")
    async def typed_path(value: int) -> dict[str, Any]:
        return {"value": value}

    @app.get("/headers")
    async def headers(
        token: Annotated[str, Header("x-token")],
        user_agent: Annotated[str | None, Header()] = None,
        session: Annotated[str | None, Cookie()] = None,
        count: Annotated[int, Cookie("n")] = 0,
    ) -> dict[str, Any]:
        return {"token": token, "ua": user_agent, "session": session, "count": count}

    @app.get("/required")
    async def required(q: str, n: int) -> dict[str, Any]:
        return {"q": q, "n": n}

    return app


def test_path_and_query_parameters_are_converted() -> None:
    with client_for(make_params_app()) as client:
        response = client.get("/items/5", params=[("q", "hi"), ("limit", "7"), ("flag", "true"),
                                                  ("tags", "a"), ("tags", "b"),
                                                  ("color", "blue"), ("order", "desc")])
        assert response.status_code == 200
        assert response.json() == {"item_id": 5, "q": "hi", "limit": 7, "flag": True,
                                   "tags": ["a", "b"], "color": "blue", "order": "desc"}
        assert client.get("/items/5").json() == {
            "item_id": 5, "q": None, "limit": 10, "flag": False, "tags": [], "color": "red",
            "order": "asc"}
        assert client.get("/typed-path/12").json() == {"value": 12}


def test_every_failing_field_is_reported_at_once() -> None:
    with client_for(make_params_app()) as client:
        response = client.get("/items/5?limit=500&flag=maybe&color=green&order=up")
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["status"] == 422
        errors = {(e["loc"], e["name"]): e["message"] for e in problem["errors"]}
        assert set(errors) == {("query", "limit"), ("query", "flag"), ("query", "color"),
                               ("query", "order")}
        assert "<= 100" in errors[("query", "limit")]
        missing = client.get("/required").json()["errors"]
        assert missing == [{"loc": "query", "name": "q", "message": "Field required",
                            "type": "missing", "location": ["query", "q"]},
                           {"loc": "query", "name": "n", "message": "Field required",
                            "type": "missing", "location": ["query", "n"]}]
        assert client.get("/typed-path/abc").json()["errors"] == [
            {"loc": "path", "name": "value", "message": "Expected `int`, got `str`",
             "type": "type", "location": ["path", "value"]}]


def test_headers_and_cookies() -> None:
    with client_for(make_params_app()) as client:
        response = client.get("/headers", headers={"x-token": "secret", "user-agent": "ua/1",
                                                   "cookie": "session=abc; n=3"})
        assert response.json() == {"token": "secret", "ua": "ua/1", "session": "abc",
                                   "count": 3}
        bad = client.get("/headers", headers={"cookie": "n=three"})
        assert bad.status_code == 422
        assert {(e["loc"], e["name"]) for e in bad.json()["errors"]} == {
            ("header", "x-token"), ("cookie", "n")}


# --- bodies ------------------------------------------------------------------------------------


def make_body_app() -> App:
    app = App()

    @app.post("/struct", status_code=201)
    async def struct(item: Item) -> Item:
        return item

    @app.post("/dataclass")
    async def dataclass_(point: Point) -> Point:
        return point

    @app.post("/typeddict")
    async def typeddict(movie: Movie) -> Movie:
        return movie

    @app.post("/pydantic")
    async def pydantic_(user: User) -> User:
        return user

    @app.post("/dict")
    async def dict_(data: dict[str, int]) -> dict[str, int]:
        return data

    @app.post("/list")
    async def list_(items: list[Item]) -> int:
        return len(items)

    @app.post("/json-array")
    async def json_array(names: Annotated[list[str], Body()]) -> list[str]:
        return names

    @app.post("/bytes")
    async def raw(data: bytes) -> dict[str, int]:
        return {"length": len(data)}

    @app.post("/text")
    async def text(data: Annotated[str, Body()]) -> str:
        return data.upper()

    @app.post("/optional")
    async def optional(item: Item | None = None) -> dict[str, bool]:
        return {"given": item is not None}

    @app.post("/with-query/{item_id:int}")
    async def with_query(item_id: int, item: Item, dry_run: bool = False) -> dict[str, Any]:
        return {"id": item_id, "name": item.name, "dry_run": dry_run}

    return app


def test_struct_body_round_trip() -> None:
    with client_for(make_body_app()) as client:
        response = client.post("/struct", json={"name": "pen", "price": 1.5})
        assert response.status_code == 201
        assert response.json() == {"name": "pen", "price": 1.5, "tags": []}


@pytest.mark.parametrize(("path", "payload", "expected"), [
    ("/dataclass", {"x": 1, "y": 2}, {"x": 1, "y": 2}),
    ("/typeddict", {"title": "Alien", "year": 1979}, {"title": "Alien", "year": 1979}),
    ("/pydantic", {"name": "ann", "age": 3}, {"name": "ann", "age": 3}),
    ("/dict", {"a": 1}, {"a": 1}),
    ("/list", [{"name": "a", "price": 1}, {"name": "b", "price": 2}], 2),
    ("/json-array", ["x", "y"], ["x", "y"]),
])
def test_body_types(path: str, payload: Any, expected: Any) -> None:
    with client_for(make_body_app()) as client:
        response = client.post(path, json=payload)
        assert response.status_code == 200, response.text
        assert response.json() == expected


def test_raw_bodies_and_optional_body() -> None:
    with client_for(make_body_app()) as client:
        assert client.post("/bytes", content=b"\x00\x01\x02").json() == {"length": 3}
        assert client.post("/text", content="hello",
                           headers={"content-type": "text/plain"}).text == "HELLO"
        assert client.post("/optional").json() == {"given": False}
        assert client.post("/optional", json={"name": "a", "price": 1}).json() == {"given": True}
        assert client.post("/with-query/3?dry_run=1", json={"name": "n", "price": 2}).json() == {
            "id": 3, "name": "n", "dry_run": True}


def test_body_validation_errors_carry_json_paths() -> None:
    with client_for(make_body_app()) as client:
        response = client.post("/struct", json={"name": "pen", "price": "cheap"})
        assert response.status_code == 422
        assert response.json()["errors"] == [
            {"loc": "body", "name": "$.price", "message": "Expected `float`, got `str`",
             "type": "type", "location": ["body", "price"]}]
        nested = client.post("/list", json=[{"name": "a", "price": 1}, {"name": 2, "price": 1}])
        assert nested.json()["errors"][0]["name"] == "$[1].name"
        pyd = client.post("/pydantic", json={"name": "x", "age": -1})
        assert pyd.status_code == 422
        assert pyd.json()["errors"][0]["name"] == "$.age"
        missing = client.post("/struct")
        assert missing.status_code == 422
        assert missing.json()["errors"] == [
            {"loc": "body", "name": "$", "message": "A JSON body is required",
             "type": "missing", "location": ["body"]}]
        both = client.post("/with-query/3?dry_run=perhaps", json={"name": 1, "price": 2})
        assert {e["loc"] for e in both.json()["errors"]} == {"query", "body"}


def test_json_body_needs_a_json_content_type() -> None:
    with client_for(make_body_app()) as client:
        as_text = client.post("/struct", content=b'{"name": "pen", "price": 1}',
                              headers={"content-type": "text/plain"})
        assert as_text.status_code == 415  # never parsed: a CSRF-shaped request
        none = client.post("/struct", content=b'{"name": "pen", "price": 1}')
        assert none.status_code == 415
        vendor = client.post("/struct", content=b'{"name": "pen", "price": 1}',
                             headers={"content-type": "application/vnd.api+json"})
        assert vendor.status_code == 201
        malformed = client.post("/struct", content=b"{oops",
                                headers={"content-type": "application/json"})
        assert malformed.status_code == 400
        assert "Invalid JSON body" in malformed.json()["detail"]


def test_extractors_as_a_power_tool() -> None:
    app = App()

    def parse_filters(query: Any) -> dict[str, str]:
        filters = {k[len("f."):]: v for k, v in query.items() if k.startswith("f.")}
        if not filters:
            raise ValueError("give at least one f.<field> filter")
        return filters

    def parse_csv(body: bytes) -> list[list[str]]:
        return [line.split(",") for line in body.decode().splitlines()]

    @app.post("/search")
    async def search(
        filters: Annotated[dict[str, str], Query(extractor=parse_filters)],
        rows: Annotated[list[list[str]], Body(decoder=parse_csv)],
    ) -> dict[str, Any]:
        return {"filters": filters, "rows": rows}

    with client_for(app) as client:
        response = client.post("/search?f.city=Oslo&x=1", content=b"a,b\nc,d")
        assert response.json() == {"filters": {"city": "Oslo"}, "rows": [["a", "b"], ["c", "d"]]}
        refused = client.post("/search?x=1", content=b"")
        assert refused.status_code == 422
        assert refused.json()["errors"] == [
            {"loc": "query", "name": "filters", "message": "give at least one f.<field> filter",
             "type": "invalid", "location": ["query", "filters"]}]


# --- injection by type ---------------------------------------------------------------------------


def test_request_and_background_tasks_are_injected() -> None:
    app = App()
    ran: list[str] = []

    def record(text: str) -> None:
        ran.append(text)

    @app.post("/signup")
    async def signup(req: Request, tasks: BackgroundTasks, name: str) -> dict[str, str]:
        tasks.add_task(record, f"welcome {name}")
        tasks.add_task(record, f"audit {req.method}")
        return {"status": "ok"}

    with client_for(app) as client:
        assert client.post("/signup?name=ann").json() == {"status": "ok"}
    assert ran == ["welcome ann", "audit POST"]


def test_sync_handler_with_params_runs_in_a_thread() -> None:
    app = App()

    @app.get("/sync/{n:int}")
    def sync(n: int) -> dict[str, Any]:
        return {"n": n, "thread": threading.current_thread().name}

    with client_for(app) as client:
        body = client.get("/sync/4").json()
    assert body["n"] == 4
    assert body["thread"] != "joey-test-loop"


# --- dependency injection ------------------------------------------------------------------------


def test_dependencies_nested_cached_and_torn_down_in_reverse() -> None:
    events: list[str] = []
    app = App()

    async def get_settings() -> dict[str, str]:
        events.append("settings")
        return {"dsn": "memory://"}

    async def get_db(settings: Annotated[dict[str, str], Depends(get_settings)]
                     ) -> AsyncIterator[str]:
        events.append("db open")
        yield f"db({settings['dsn']})"
        events.append("db close")

    def get_repo(db: Annotated[str, Depends(get_db)], page: int = 1) -> Iterator[str]:
        events.append("repo open")
        yield f"repo[{db}] page {page}"
        events.append("repo close")

    @app.get("/things")
    async def things(
        repo: Annotated[str, Depends(get_repo)],
        db: Annotated[str, Depends(get_db)],
        settings: Annotated[dict[str, str], Depends(get_settings)],
    ) -> dict[str, str]:
        events.append("handler")
        return {"repo": repo, "db": db, "dsn": settings["dsn"]}

    with client_for(app) as client:
        assert client.get("/things?page=2").json() == {
            "repo": "repo[db(memory://)] page 2", "db": "db(memory://)", "dsn": "memory://"}
    # each dependency once per request; teardown in reverse order, after the response
    assert events == ["settings", "db open", "repo open", "handler", "repo close", "db close"]


def test_generator_dependency_sees_the_handlers_error() -> None:
    seen: list[str] = []
    app = App()

    async def transaction() -> AsyncIterator[str]:
        try:
            yield "tx"
        except Exception as exc:
            seen.append(f"rollback: {exc}")
            raise
        else:
            seen.append("commit")

    @app.post("/ok")
    async def ok(tx: Annotated[str, Depends(transaction)]) -> str:
        return tx

    @app.post("/fail")
    async def fail(tx: Annotated[str, Depends(transaction)]) -> str:
        raise HTTPError(409, "conflict")

    with client_for(app) as client:
        assert client.post("/ok").text == "tx"
        assert client.post("/fail").status_code == 409
    assert seen == ["commit", "rollback: conflict"]


def test_teardown_waits_for_the_last_byte_of_a_stream() -> None:
    events: list[str] = []
    app = App()

    async def session() -> AsyncIterator[str]:
        events.append("open")
        yield "s"
        events.append("close")

    @app.get("/stream")
    async def stream(s: Annotated[str, Depends(session)]) -> StreamingResponse:
        async def body() -> AsyncIterator[str]:
            for i in range(3):
                events.append(f"chunk {i} (session {s})")
                yield f"{i}"

        return StreamingResponse(body())

    with client_for(app) as client:
        assert client.get("/stream").text == "012"
    assert events == ["open", "chunk 0 (session s)", "chunk 1 (session s)",
                      "chunk 2 (session s)", "close"]


def test_failing_teardown_is_logged_and_others_still_run(caplog: pytest.LogCaptureFixture
                                                         ) -> None:
    events: list[str] = []
    app = App()

    async def first() -> AsyncIterator[int]:
        yield 1
        events.append("first closed")

    async def broken() -> AsyncIterator[int]:
        yield 2
        raise RuntimeError("teardown broke")

    @app.get("/")
    async def index(a: Annotated[int, Depends(first)], b: Annotated[int, Depends(broken)]
                    ) -> int:
        return a + b

    with caplog.at_level(logging.ERROR, logger="joey"), client_for(app) as client:
        assert client.get("/").json() == 3
    assert events == ["first closed"]
    assert "teardown broke" in caplog.text


def test_route_router_and_app_dependencies_run_for_every_route() -> None:
    calls: list[str] = []

    def app_level() -> None:
        calls.append("app")

    async def router_level(x_key: Annotated[str, Header()]) -> None:
        calls.append(f"router {x_key}")

    def route_level() -> None:
        calls.append("route")

    app = App(dependencies=[Depends(app_level)])
    router = Router(prefix="/r", dependencies=[Depends(router_level)])

    @router.get("/x", dependencies=[Depends(route_level)])
    async def x() -> str:
        calls.append("handler")
        return "x"

    app.include_router(router)
    with client_for(app) as client:
        assert client.get("/r/x", headers={"x-key": "k"}).text == "x"
        assert client.get("/r/x").status_code == 422  # the router dependency's header
    assert calls == ["app", "router k", "route", "handler"]


def test_dependency_overrides() -> None:
    app = App()

    def real_db() -> str:
        return "real"

    @app.get("/")
    async def index(db: Annotated[str, Depends(real_db)]) -> str:
        return db

    with client_for(app) as client:
        assert client.get("/").text == "real"
        app.dependency_overrides[real_db] = lambda: "fake"
        assert client.get("/").text == "fake"
        app.dependency_overrides.clear()
        assert client.get("/").text == "real"


def test_app_scoped_dependency_lives_from_startup_to_shutdown() -> None:
    events: list[str] = []
    app = App()

    async def pool() -> AsyncIterator[str]:
        events.append("pool open")
        yield "pool"
        events.append("pool close")

    @app.get("/")
    async def index(p: Annotated[str, Depends(pool, scope="app")]) -> str:
        return p

    with client_for(app) as client:
        assert events == ["pool open"]
        assert client.get("/").text == "pool"
        assert client.get("/").text == "pool"
        assert events == ["pool open"]
    assert events == ["pool open", "pool close"]


def test_startup_errors_name_the_handler() -> None:
    def cyc_a(x: Annotated[int, Depends(lambda: 0)]) -> int:
        return x

    def cyc_b(y: Annotated[int, Depends(cyc_a)]) -> int:
        return y

    cyc_a.__annotations__["x"] = Annotated[int, Depends(cyc_b)]

    app = App()

    @app.get("/cycle")
    async def cycle(v: Annotated[int, Depends(cyc_a)]) -> int:
        return v

    cycle_message = r"cycle .*: dependency cycle .*cyc_a → .*cyc_b → .*cyc_a"
    with pytest.raises(LifespanError, match=cycle_message):
        TestClient(app).__enter__()

    app2 = App()

    class Unknown:
        pass

    @app2.get("/weird")
    async def weird(thing: Unknown) -> None:
        return None

    with pytest.raises(LifespanError, match=r"weird .*cannot read from a query string"):
        TestClient(app2).__enter__()

    app3 = App()

    @app3.post("/two-bodies")
    async def two(a: Item, b: Point) -> None:
        return None

    with pytest.raises(LifespanError, match=r"two .*several body parameters"):
        TestClient(app3).__enter__()


# --- return annotations ----------------------------------------------------------------------


class Row:
    """Something like an ORM row: attributes, not a dict."""

    def __init__(self, name: str, price: float, secret: str) -> None:
        self.name = name
        self.price = price
        self.secret = secret


def test_return_annotation_decides_serialization(caplog: pytest.LogCaptureFixture) -> None:
    app = App()

    @app.get("/from-dict")
    async def from_dict() -> Item:
        return {"name": "pen", "price": 2, "internal": "dropped"}  # type: ignore[return-value]

    @app.get("/from-object")
    async def from_object() -> Item:
        return Row("cup", 3.5, "not for clients")  # type: ignore[return-value]

    @app.get("/pydantic")
    def pyd() -> User:
        return {"name": "ann", "age": 4}  # type: ignore[return-value]

    @app.get("/optional")
    async def optional() -> Item | None:
        return None

    @app.get("/wrong")
    async def wrong() -> Item:
        return {"name": "pen"}  # type: ignore[return-value]

    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/from-dict").json() == {"name": "pen", "price": 2.0, "tags": []}
        assert client.get("/from-object").json() == {"name": "cup", "price": 3.5, "tags": []}
        assert client.get("/pydantic").json() == {"name": "ann", "age": 4}
        assert client.get("/optional").status_code == 204
        with caplog.at_level(logging.ERROR, logger="joey"):
            wrong_response = client.get("/wrong")
    assert wrong_response.status_code == 500
    assert "price" not in wrong_response.text
    assert "returned a value that is not a valid Item" in caplog.text
    assert "wrong" in caplog.text


# --- hardening: app-scoped lifetimes, overrides, refused markers, return conversion ----------


def counting_pool() -> tuple[Any, list[str]]:
    made: list[str] = []

    async def pool() -> AsyncIterator[str]:
        made.append("made")
        yield f"pool {made.count('made')}"
        made.append("closed")

    return pool, made


def test_app_scoped_dependency_is_shared_by_http_and_websocket_routes() -> None:
    from joey import WebSocket

    pool, made = counting_pool()
    app = App()

    @app.get("/")
    async def index(p: Annotated[str, Depends(pool, scope="app")]) -> str:
        return p

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, p: Annotated[str, Depends(pool, scope="app")]) -> None:
        await websocket.accept()
        await websocket.send_text(p)

    with TestClient(app) as client:
        assert client.get("/").text == "pool 1"
        with client.websocket_connect("/ws") as session:
            assert session.receive_text() == "pool 1"
    assert made == ["made", "closed"]


def test_app_scoped_dependency_survives_recompiles() -> None:
    pool, made = counting_pool()
    app = App()

    def unrelated() -> str:
        return "real"

    @app.get("/")
    async def index(p: Annotated[str, Depends(pool, scope="app")]) -> str:
        return p

    @app.get("/late")
    async def late(p: Annotated[str, Depends(pool, scope="app")]) -> str:
        return p

    with TestClient(app) as client:
        assert client.get("/").text == "pool 1"
        app.dependency_overrides[unrelated] = lambda: "fake"  # the plans compile again
        assert client.get("/").text == "pool 1"
        assert client.get("/late").text == "pool 1"
        # Overriding that very dependency does make a new value; dropping it goes back.
        app.dependency_overrides[pool] = lambda: "fake pool"
        assert client.get("/").text == "fake pool"
        del app.dependency_overrides[pool]
        assert client.get("/").text == "pool 1"
    assert made == ["made", "closed"]


def test_app_scoped_dependency_is_made_again_for_a_new_lifespan() -> None:
    pool, made = counting_pool()
    app = App()

    @app.get("/")
    async def index(p: Annotated[str, Depends(pool, scope="app")]) -> str:
        return p

    with TestClient(app) as client:
        assert client.get("/").text == "pool 1"
    with TestClient(app) as client:
        assert client.get("/").text == "pool 2"
    assert made == ["made", "closed", "made", "closed"]


@pytest.mark.parametrize("change", ["update", "pop", "del", "clear", "setdefault", "ior",
                                    "popitem", "assign"])
def test_every_change_to_dependency_overrides_takes_effect(change: str) -> None:
    def real() -> str:
        return "real"

    app = App()

    @app.get("/")
    async def index(value: Annotated[str, Depends(real)]) -> str:
        return value

    client = TestClient(app)
    assert client.get("/").text == "real"
    overrides = app.dependency_overrides
    fake = lambda: "fake"  # noqa: E731
    if change in ("update", "setdefault", "ior", "assign"):
        if change == "update":
            overrides.update({real: fake})
        elif change == "setdefault":
            overrides.setdefault(real, fake)
        elif change == "ior":
            overrides |= {real: fake}
        else:
            app.dependency_overrides = {real: fake}
        assert client.get("/").text == "fake"
        return
    overrides[real] = fake
    assert client.get("/").text == "fake"
    if change == "pop":
        assert overrides.pop(real) is fake
    elif change == "del":
        del overrides[real]
    elif change == "popitem":
        assert overrides.popitem() == (real, fake)
    else:
        overrides.clear()
    assert client.get("/").text == "real"
    assert dict(overrides) == {}


class Filters(msgspec.Struct):
    color: str
    size: int


@pytest.mark.parametrize(
    ("annotation", "source"),
    [(Annotated[Filters, Query()], "a query string"),
     (Annotated[list[Filters], Query()], "a query string"),
     (Annotated[Point, Query("p")], "a query string"),
     (Annotated[Filters, Header()], "a header"),
     (Annotated[dict[str, int], Cookie()], "a cookie")],
)
def test_structured_type_from_query_header_or_cookie_is_a_startup_error(
    annotation: Any, source: str
) -> None:
    app = App()

    async def search(filters: annotation) -> str:  # type: ignore[valid-type]
        return "never"

    app.get("/search")(search)
    with pytest.raises(LifespanError) as failed, TestClient(app):
        pass
    message = str(failed.value)
    assert "search" in message and "'filters'" in message
    assert f"cannot read from {source}" in message
    assert "structured type is a request body" in message


def test_query_extractor_may_build_a_structure() -> None:
    app = App()

    def filters(query: Any) -> Filters:
        return Filters(color=query["color"], size=int(query["size"]))

    @app.get("/search")
    async def search(f: Annotated[Filters, Query(extractor=filters)]) -> dict[str, Any]:
        return {"color": f.color, "size": f.size}

    assert TestClient(app).get("/search?color=red&size=3").json() == {"color": "red", "size": 3}


class NoteOut(msgspec.Struct):
    id: int
    title: str


class NoteDict(TypedDict):
    id: int
    title: str


@dataclasses.dataclass
class NoteData:
    id: int
    title: str


class NoteModel(pydantic.BaseModel):
    id: int
    title: str


class OrmRow:
    """What an ORM hands back: an object with attributes (and more than the API shows)."""

    def __init__(self, id: int, title: str) -> None:
        self.id = id
        self.title = title
        self.secret = "never sent"


ROWS = [OrmRow(1, "one"), OrmRow(2, "two")]
EXPECTED = [{"id": 1, "title": "one"}, {"id": 2, "title": "two"}]


def conversion_app() -> App:
    app = App()

    @app.get("/list")
    async def as_list() -> list[NoteOut]:
        return ROWS  # type: ignore[return-value]

    @app.get("/dict")
    async def as_dict() -> dict[str, NoteData]:
        return {"first": ROWS[0]}  # type: ignore[dict-item]

    @app.get("/tuple")
    async def as_tuple() -> tuple[NoteOut, int]:
        return (ROWS[0], 2)  # type: ignore[return-value]

    @app.get("/optional")
    async def optional(missing: bool = False) -> NoteOut | None:
        return None if missing else ROWS[0]  # type: ignore[return-value]

    @app.get("/union")
    async def union(which: int = 0) -> list[NoteOut] | NoteData:
        return ROWS if which else ROWS[1]  # type: ignore[return-value]

    @app.get("/typeddict")
    async def typed_dicts() -> list[NoteDict]:
        return ROWS  # type: ignore[return-value]

    @app.get("/pydantic")
    async def models() -> list[NoteModel]:
        return ROWS  # type: ignore[return-value]

    @app.get("/invalid")
    async def invalid() -> list[NoteOut]:
        return [{"id": "not a number", "title": "x"}]  # type: ignore[list-item]

    @app.get("/passthrough")
    async def passthrough() -> list[NoteOut]:
        return [NoteOut(id=1, title="one")]

    return app


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/list", EXPECTED), ("/dict", {"first": EXPECTED[0]}), ("/tuple", [EXPECTED[0], 2]),
     ("/optional", EXPECTED[0]), ("/union?which=1", EXPECTED), ("/union", EXPECTED[1]),
     ("/typeddict", EXPECTED), ("/pydantic", EXPECTED),
     ("/passthrough", [{"id": 1, "title": "one"}])],
)
def test_return_annotations_convert_at_any_depth(path: str, expected: Any) -> None:
    response = TestClient(conversion_app()).get(path)
    assert response.status_code == 200, response.text
    assert response.json() == expected
    assert "never sent" not in response.text


def test_return_annotation_none_and_invalid_values() -> None:
    client = TestClient(conversion_app(), raise_server_exceptions=False)
    assert client.get("/optional?missing=true").status_code == 204
    failed = client.get("/invalid")
    assert failed.status_code == 500
    assert "not a number" not in failed.text


@pytest.mark.parametrize(
    ("annotation", "value"),
    [(list[NoteOut], [NoteOut(1, "one"), NoteOut(2, "two")]),
     (tuple[NoteOut, ...], (NoteOut(1, "one"),)),
     (dict[str, NoteData], {"first": NoteData(1, "one")}),
     (list[NoteOut] | None, [NoteOut(1, "one")]),
     (list[NoteOut | None], [None, NoteOut(1, "one")])],
)
def test_values_already_of_the_declared_type_pass_through_unconverted(
    annotation: Any, value: Any
) -> None:
    # -> list[World] returning Structs: a type check per item, not a second conversion (a
    # copy of every row: 7-14 us for 20 rows in the TechEmpower-style queries).
    async def handler() -> None: ...

    convert = return_converter(handler, annotation)
    assert convert is not None
    assert convert(value) is value
    mixed = convert([*value, OrmRow(3, "three")]) if isinstance(value, list) else None
    if mixed is not None:  # one item that is not a NoteOut yet: the whole list is converted
        assert [item.title for item in mixed if item is not None][-1] == "three"
        assert all(isinstance(item, NoteOut | None) for item in mixed)


# --- Body(embed=True): a parameter read from one key of the JSON body ---------------------------


class Credentials(msgspec.Struct):
    email: Annotated[str, Meta(min_length=3)]
    password: str


def embed_app() -> App:
    app = App()

    @app.post("/login")
    async def login(
        user: Annotated[Credentials, Body(embed=True)],
        remember: Annotated[bool, Body(embed=True)] = False,
        device: Annotated[str, Body("device-name", embed=True)] = "unknown",
    ) -> dict[str, Any]:
        return {"email": user.email, "remember": remember, "device": device}

    @app.post("/count")
    async def count(n: Annotated[int, Body(embed=True)]) -> int:
        return n

    return app


def test_embedded_body_parameters_read_their_keys() -> None:
    client = TestClient(embed_app())
    ok = client.post("/login", json={"user": {"email": "a@b.c", "password": "x"},
                                     "remember": True, "device-name": "phone", "other": 1})
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"email": "a@b.c", "remember": True, "device": "phone"}
    defaults = client.post("/login", json={"user": {"email": "a@b.c", "password": "x"}})
    assert defaults.json() == {"email": "a@b.c", "remember": False, "device": "unknown"}
    assert client.post("/count", json={"n": 3.0}).json() == 3  # an integral float is an int


def test_embedded_body_errors_are_located_at_the_key() -> None:
    client = TestClient(embed_app())
    missing = client.post("/login", json={"remember": True})
    assert missing.status_code == 422
    assert [e["name"] for e in missing.json()["errors"]] == ["$.user"]
    short = client.post("/login", json={"user": {"email": "a", "password": "x"}})
    assert [e["name"] for e in short.json()["errors"]] == ["$.user.email"]
    not_object = client.post("/count", json=[1])
    assert not_object.status_code == 422


def test_embedded_body_declarations_are_checked() -> None:
    with pytest.raises(ValueError, match="choose one"):
        Body(embed=True, decoder=bytes)
    with pytest.raises(ValueError, match="use it with embed=True"):
        Body(alias="key")
    keyed = App()

    @keyed.post("/keyed")  # in Annotated the first argument is the alias: refused at startup
    async def keyed_body(item: Annotated[int, Body("key")]) -> str:
        return "never"

    with pytest.raises(TypeError, match=r"Body\('key'\) names a key of the body: use it with "
                                        r"embed=True"):
        keyed.freeze()
    app = App()

    @app.post("/mixed")
    async def mixed(whole: Item, part: Annotated[int, Body(embed=True)]) -> str:
        return "never"

    with pytest.raises(LifespanError, match=r"several body parameters.*Body\(embed=True\)"), \
            TestClient(app):
        pass
    twice = App()

    @twice.post("/twice")
    async def dup(a: Annotated[int, Body("k", embed=True)],
                  b: Annotated[int, Body("k", embed=True)]) -> str:
        return "never"

    with pytest.raises(LifespanError, match="reads the body key 'k' twice"), TestClient(twice):
        pass


def test_embedded_body_in_the_route_model() -> None:
    [login] = [r for r in embed_app().routes if r.path == "/login"]
    body = [(p.name, p.source, p.key) for p in login.parameters]
    assert body == [("user", "body", "user"), ("remember", "body", "remember"),
                    ("device", "body", "device-name")]


class Cat(msgspec.Struct, tag=True):
    meow: str


class Dog(msgspec.Struct, tag=True):
    bark: str


def test_a_union_of_structures_is_a_body() -> None:
    app = App()

    @app.post("/pets")
    async def add_pet(pet: Cat | Dog) -> dict[str, str]:
        return {"kind": type(pet).__name__}

    client = TestClient(app)
    assert client.post("/pets", json={"type": "Dog", "bark": "woof"}).json() == {"kind": "Dog"}
    assert client.post("/pets", json={"type": "Cat", "meow": "mew"}).json() == {"kind": "Cat"}
    assert client.post("/pets", json={"type": "Cow"}).status_code == 422
    [route] = app.routes
    assert route.body is not None and route.body.source == "body"


def test_a_union_of_structures_from_the_query_is_a_startup_error() -> None:
    app = App()

    @app.get("/pets")
    async def pets(pet: Annotated[Cat | Dog, Query()]) -> str:
        return "never"

    with pytest.raises(LifespanError, match="structured type is a request body"), \
            TestClient(app):
        pass


def test_null_in_text_is_text_never_none() -> None:
    """A query, header, cookie, path or form value is sent or absent, never null (as the API
    document says): ``?n=null`` for ``n: int | None`` is a 422, not None (msgspec's lax
    conversion alone turns "null", in any case, into None); a ``str | None`` gets "null"."""
    app = App()

    @app.get("/text/{p}")
    async def text(
        p: int | None, q: Annotated[int, Meta(ge=1)] | None = None,
        h: Annotated[float | None, Header(alias="x-h")] = None,
        c: Annotated[bool | None, Cookie()] = None, s: str | None = None,
    ) -> list[object]:
        return [p, q, h, c, s]

    @app.post("/form")
    async def form(n: Annotated[int | None, Form()] = None) -> list[int | None]:
        return [n]

    with TestClient(app) as client:
        assert client.get("/text/1?s=null").json() == [1, None, None, None, "null"]
        sent = client.get("/text/2?q=3", headers={"x-h": "0.5", "cookie": "c=true"})
        assert sent.json() == [2, 3, 0.5, True, None]
        refused = client.get("/text/null?q=NULL", headers={"x-h": "null", "cookie": "c=Null"})
        assert refused.status_code == 422
        assert {(e["loc"], e["name"], e["type"]) for e in refused.json()["errors"]} == {
            ("path", "p", "type"), ("query", "q", "type"), ("header", "x-h", "type"),
            ("cookie", "c", "type")}
        assert client.post("/form", data={"n": "4"}).json() == [4]
        assert client.post("/form", data={"other": "x"}).json() == [None]
        assert client.post("/form", data={"n": "null"}).status_code == 422


class _Paging:
    """A class as a dependency, its parameters typed by its __init__ (FastAPI's habit)."""

    offset: str  # a class attribute's annotation does not type the parameter

    def __init__(self, offset: Annotated[int, Meta(ge=0)] = 0,
                 limit: Annotated[int, Meta(ge=1, le=100)] = 10) -> None:
        self.offset = offset  # type: ignore[assignment]
        self.limit = limit


class _SubPaging(_Paging):
    pass


@dataclasses.dataclass
class _Filters:
    q: str = ""
    exact: bool = False


def test_a_class_dependency_is_typed_and_checked_by_its_init() -> None:
    app = App()

    @app.get("/items")
    async def items(page: Annotated[_Paging, Depends(_Paging)],
                    sub: Annotated[_SubPaging, Depends(_SubPaging)],
                    filters: Annotated[_Filters, Depends(_Filters)]) -> dict[str, Any]:
        return {"offset": page.offset, "limit": page.limit, "sub": sub.limit,
                "q": filters.q, "exact": filters.exact}

    with client_for(app) as client:
        assert client.get("/items?offset=2&limit=5&q=x&exact=true").json() == {
            "offset": 2, "limit": 5, "sub": 5, "q": "x", "exact": True}
        refused = client.get("/items?limit=1000&offset=-1")
        assert refused.status_code == 422  # the constraints hold, not silently ignored
        assert {e["name"] for e in refused.json()["errors"]} == {"limit", "offset"}


# --- Depends() without a function: the parameter's class (FastAPI's habit) ------------------

_PagingDep = Annotated[_Paging, Depends()]  # one marker, shared by every parameter using it


class _Reader:
    """A class that is a security dependency: reads the caller from a header."""

    def __init__(self, x_user: Annotated[str | None, Header()] = None) -> None:
        if x_user is None:
            raise HTTPError(401, "Who are you?")
        self.name = x_user


def test_depends_without_a_function_depends_on_the_parameters_class() -> None:
    calls: list[str] = []

    class Counted:  # a local class: its annotations resolve in this function's namespace
        def __init__(self, q: str = "") -> None:
            calls.append(q)
            self.q = q

    app = App()

    @app.get("/items")
    async def items(page: _PagingDep,
                    counted: Annotated[Counted, Depends()],
                    again: Annotated[Counted, Depends(Counted)],
                    filters: _Filters = Depends(),  # noqa: B008 - FastAPI's `f: F = Depends()`
                    ) -> dict[str, Any]:
        return {"offset": page.offset, "limit": page.limit, "exact": filters.exact,
                "same": counted is again}

    @app.get("/pages")
    async def pages(page: _PagingDep) -> int:
        return page.limit

    @app.post("/notes")
    async def notes(reader: Annotated[_Reader, Security()], note: Item) -> str:
        return reader.name

    with client_for(app) as client:
        assert client.get("/items?offset=2&limit=5&exact=true&q=x").json() == {
            "offset": 2, "limit": 5, "exact": True, "same": True}
        assert calls == ["x"]  # Depends() and Depends(Counted) are one dependency: called once
        refused = client.get("/pages?limit=1000")
        assert refused.status_code == 422
        assert [e["name"] for e in refused.json()["errors"]] == ["limit"]
        # Security(): the class runs first, before the body is read: a 401, not a 422
        assert client.post("/notes", json={"name": 5}).status_code == 401
        sent = client.post("/notes", json={"name": "n", "price": 1}, headers={"x-user": "ann"})
        assert sent.text == "ann"
        # overrides are keyed on the class, as for Depends(_Paging)
        app.dependency_overrides[_Paging] = lambda: _Paging(limit=3)
        assert client.get("/pages?limit=50").json() == 3
    assert get_args(_PagingDep)[1].dependency is None  # the shared marker is left as it was


class _Abstract(abc.ABC):
    @abc.abstractmethod
    def run(self) -> None: ...


class _Protocol(Protocol):
    def run(self) -> None: ...


@pytest.mark.parametrize(("annotation", "problem"), [
    (Annotated[_Paging | None, Depends()], "which is not a class"),
    (Annotated[list[int], Depends()], "which is not a class"),
    (Annotated[Any, Depends()], "is annotated typing.Any, which is not a class"),
    (Annotated[_Abstract, Depends()], "_Abstract, an abstract class"),
    (Annotated[_Protocol, Security()], "_Protocol, a Protocol"),
    (None, "has no annotation"),
])
def test_depends_without_a_function_is_refused_unless_the_annotation_is_a_class(
    annotation: Any, problem: str,
) -> None:
    app = App()

    async def handler(value=None) -> None:  # type: ignore[no-untyped-def]
        return None

    if annotation is None:  # FastAPI's spelling, `value = Depends()`, with no annotation
        handler.__defaults__ = (Depends(),)
    else:
        handler.__annotations__["value"] = annotation
    app.get("/x")(handler)
    spelled = "Security" if "Protocol" in problem else "Depends"
    with pytest.raises(LifespanError) as failed, TestClient(app):
        pass
    message = str(failed.value)
    assert "test_params.py" in message  # where the handler is
    assert "parameter 'value' of " in message
    assert f"takes {spelled}() without a function, which calls the parameter's class" in message
    assert problem in message
    assert f"`value: Annotated[T, {spelled}(get_value)]`" in message


def test_depends_without_a_function_is_refused_where_there_is_no_parameter() -> None:
    app = App(dependencies=[Depends()])

    @app.get("/x")
    async def handler() -> None:
        return None

    with pytest.raises(LifespanError, match=r"Depends\(\) names no function; only on a "
                                            r"parameter may it be left out"), TestClient(app):
        pass
    with pytest.raises(TypeError, match=r"JWTBearer\(key=...\): Depends\(\) names no function"):
        JWTBearer(Depends(), algorithms=["HS256"])
    with pytest.raises(TypeError, match=r"RateLimit\(key=...\): Security\(scopes=\[\]\) names"):
        RateLimit(10, 60, key=Security())
    with pytest.raises(TypeError, match=r"Caching\(key=...\): Depends\(\) names no function"):
        Caching(key=Depends())
