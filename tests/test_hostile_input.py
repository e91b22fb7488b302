"""Hostile requests, in memory: never a 500, never a URL with someone else's authority.

The same requests over real servers (uvicorn with httptools and with h11) are in
``tests/integration/test_hostile.py``.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, TypedDict

import msgspec
import pydantic
import pytest

from joey import App, BadRequest, Body, HTTPError, Request, Response, WebSocketDisconnect
from joey.channels import Message
from joey.datastructures import URL, split_host
from joey.middleware import HTTPSRedirectMiddleware
from joey.middleware.csrf import CSRFMiddleware
from joey.requests import host_header
from joey.responses import JSONResponse
from joey.testing import TestClient
from joey.websockets import WebSocket
from tests.asgi import body_messages, call, close_test_clients, http_scope

__all__ = ["close_test_clients"]

# Past the interpreter's limit on every supported Python: 1,000 levels was enough on 3.11,
# but on 3.12 and 3.13 msgspec decodes 1,000 (3.13: 5,000) levels of arrays.
DEPTHS = [30_000, 100_000]


def nested_array(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def nested_object(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


class Note(msgspec.Struct):
    title: str
    extra: Any = None


def json_app() -> App:
    app = App()

    @app.post("/raw")
    async def raw(request: Request) -> dict[str, str]:
        await request.json()
        return {"ok": "yes"}

    @app.post("/dict")
    async def typed_dict(body: dict[str, Any]) -> dict[str, str]:
        return {"ok": "yes"}

    @app.post("/list")
    async def typed_list(body: Annotated[list[Any], Body()]) -> dict[str, str]:
        return {"ok": "yes"}

    @app.post("/struct")
    async def struct(note: Note) -> dict[str, str]:
        return {"ok": "yes"}

    return app


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize(
    ("path", "status", "shape"),
    [("/raw", 400, "array"), ("/raw", 400, "object"), ("/dict", 422, "object"),
     ("/list", 422, "array"), ("/struct", 422, "field")],
)
def test_deeply_nested_json_is_a_client_error(path: str, status: int, shape: str,
                                              depth: int) -> None:
    if shape == "array":
        body = nested_array(depth)
    elif shape == "object":
        body = nested_object(depth)
    else:
        body = b'{"title": "x", "extra": ' + nested_array(depth) + b"}"
    client = TestClient(json_app())
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    if status == 400:
        assert problem["detail"] == "Invalid JSON body: it is nested too deeply."
    else:
        assert problem["errors"] == [
            {"loc": "body", "name": "$", "message": "Invalid JSON body: it is nested too deeply.",
             "type": "invalid", "location": ["body"]}
        ]


# -- deep JSON failing validation at its first element: the second pass that looks for every
# problem (decode untyped, walk the type) must survive the depth too --------------------------


class Point(msgspec.Struct):
    x: int


@dataclasses.dataclass
class PointDC:
    x: int


class PointTD(TypedDict):
    x: int


class PointModel(pydantic.BaseModel):
    x: int


class Tree(msgspec.Struct):
    c: list[Tree]  # short, so 100,000 levels fit in the body limit
    size: int = 0


def typed_app() -> App:
    """One route per kind of body type; each answers 200 only for a valid body."""
    app = App()
    kinds: dict[str, Any] = {
        "struct": Point, "structs": list[Point], "dataclass": PointDC, "typeddict": PointTD,
        "pydantic": PointModel, "union": Point | list[Point], "tree": Tree,
        "ints": list[list[int]],
    }
    for name, kind in kinds.items():
        def add(name: str = name, kind: Any = kind) -> None:
            @app.post(f"/{name}")
            async def whole(body: Annotated[kind, Body()]) -> str:
                return "ok"

            @app.post(f"/embedded/{name}")
            async def embedded(value: Annotated[kind, Body(embed=True)],
                               other: Annotated[int, Body(embed=True)] = 0) -> str:
                return "ok"

        add()
    return app


# (route, where msgspec stops in a body of nested arrays, what it says)
FIRST_ELEMENT = [
    ("/struct", ["body"], "Expected `object`, got `array`"),
    ("/structs", ["body", 0], "Expected `object`, got `array`"),
    ("/dataclass", ["body"], "Expected `object`, got `array`"),
    ("/typeddict", ["body"], "Expected `object`, got `array`"),
    ("/union", ["body", 0], "Expected `object`, got `array`"),
    ("/ints", ["body", 0, 0], "Expected `int`, got `array`"),
    ("/embedded/struct", ["body", "value"], "Expected `object`, got `array`"),
    ("/embedded/structs", ["body", "value", 0], "Expected `object`, got `array`"),
    ("/embedded/dataclass", ["body", "value"], "Expected `object`, got `array`"),
    ("/embedded/typeddict", ["body", "value"], "Expected `object`, got `array`"),
    ("/embedded/union", ["body", "value", 0], "Expected `object`, got `array`"),
]


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize(("path", "location", "message"), FIRST_ELEMENT)
def test_deep_json_failing_at_its_first_element_is_that_422(
        path: str, location: list[Any], message: str, depth: int) -> None:
    body = nested_array(depth)
    if path.startswith("/embedded/"):
        body = b'{"value": ' + body + b"}"
    client = TestClient(typed_app())
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    first, *others = response.json()["errors"]
    assert (first["location"], first["type"], first["message"]) == (location, "type", message)
    # the other embedded parameter's decoder skips the value, and meets its depth
    assert [issue["message"] for issue in others] == (
        ["Invalid JSON body: it is nested too deeply."] if path.startswith("/embedded/") else [])


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("path", ["/pydantic", "/embedded/pydantic", "/tree", "/embedded/tree"])
def test_deep_json_for_untyped_or_recursive_types_is_too_deep(path: str, depth: int) -> None:
    # A pydantic model's body is decoded untyped, a recursive Struct follows the nesting:
    # either decoder reaches the limit itself.
    body = nested_array(depth) if "pydantic" in path else (
        b'{"c":[' * depth + b"]}" * depth)
    if path.startswith("/embedded/"):
        body = b'{"value": ' + body + b"}"
    client = TestClient(typed_app())
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert {issue["message"] for issue in response.json()["errors"]} == {
        "Invalid JSON body: it is nested too deeply."}


@pytest.mark.parametrize("depth", range(100, 1_001, 100))
@pytest.mark.parametrize("path", ["/tree", "/ints", "/embedded/tree", "/embedded/ints"])
def test_json_decodable_but_too_deep_to_walk_is_still_a_422(path: str, depth: int) -> None:
    # Around the limit, the untyped decode can succeed where the walk in Python (two frames
    # a level) cannot: the 422 then names the problem msgspec found first.
    if path.endswith("tree"):  # valid down to the last node, whose size is not an int
        body = b'{"c":[' * depth + b'{"c": [], "size": "x"}' + b"]}" * depth
        last = ["c", 0] * depth + ["size"]
    else:  # floats, integral or not, where ints are expected, deep in the first element
        body = b"[" * depth + b"1.0, 1.5" + b"]" * depth
        last = [0, 0]
    if path.startswith("/embedded/"):
        body = b'{"value": ' + body + b"}"
        last = ["value", *last]
    client = TestClient(typed_app())
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    issues = response.json()["errors"]
    assert issues[0]["type"] in ("type", "invalid")
    if "nested too deeply" not in issues[0]["message"]:
        assert issues[0]["location"] == ["body", *last]


def test_moderately_nested_json_still_works() -> None:
    client = TestClient(json_app())
    response = client.post("/list", content=nested_array(100),
                           headers={"content-type": "application/json"})
    assert response.status_code == 200


@pytest.mark.parametrize("depth", DEPTHS)
def test_websocket_receive_json_too_deep_closes_1007(depth: int) -> None:
    app = App()
    seen: list[str] = []

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            await websocket.receive_json()
        except Exception as exc:
            seen.append(type(exc).__name__)
            raise

    client = TestClient(app)
    with client.websocket_connect("/ws") as session:
        session.send_bytes(nested_array(depth))
        with pytest.raises(WebSocketDisconnect) as closed:
            session.receive()
    assert (closed.value.code, closed.value.reason) == (1007, "JSON nested too deeply")
    assert seen == ["WebSocketDisconnect"]


@pytest.mark.parametrize("depth", DEPTHS)
def test_channel_message_too_deep_is_a_decode_error(depth: int) -> None:
    # What a WebSocket client sent may be published as it is; a subscriber's .json() then
    # raises what it raises for any other bad JSON, never a RecursionError.
    with pytest.raises(msgspec.DecodeError, match="nested too deeply"):
        Message("room", nested_array(depth)).json()
    assert Message("room", b"[[1]]").json() == [[1]]


# -- JSON strings that are not UTF-8: msgspec 0.18 raised UnicodeDecodeError, not a DecodeError


@pytest.mark.parametrize("body", [b'{"\x80a": 1}', b'{"title": "\xff"}', b'["a\xc3"]'])
@pytest.mark.parametrize("path", ["/raw", "/dict", "/list", "/struct"])
def test_json_with_a_string_that_is_not_utf8_is_a_400(path: str, body: bytes) -> None:
    client = TestClient(json_app())
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["detail"] == "Invalid JSON body: Invalid UTF-8 encoded string."


def test_websocket_and_channel_json_that_is_not_utf8_is_invalid_json() -> None:
    app = App()

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.receive_json()

    with TestClient(app).websocket_connect("/ws") as session:
        session.send_bytes(b'["\x80"]')
        with pytest.raises(WebSocketDisconnect) as closed:
            session.receive()
    assert (closed.value.code, closed.value.reason) == (1007, "Invalid JSON")
    with pytest.raises(msgspec.DecodeError, match="UTF-8"):
        Message("room", b'{"\x80": 1}').json()


# -- request targets that are not paths -------------------------------------------------------


def routed_app() -> tuple[App, list[str]]:
    app = App()
    reached: list[str] = []

    @app.get("/admin")
    async def admin(request: Request) -> str:
        reached.append(str(request.url))
        return "secret"

    @app.get("/{name}")
    async def anything(name: str) -> str:
        reached.append(name)
        return name

    return app, reached


@pytest.mark.parametrize(
    "target", ["@admin", "xadmin", "evil.com/admin", "http://evil.com/admin", "*", ""]
)
async def test_target_not_starting_with_slash_is_400(target: str) -> None:
    app, reached = routed_app()
    scope = http_scope(target, raw_path=target.encode())
    recorder = await call(app, scope)
    assert recorder.status == 400
    assert msgspec.json.decode(recorder.body)["detail"] == (
        "The request target must be a path starting with '/'."
    )
    assert reached == []


async def test_target_under_root_path_must_continue_with_slash() -> None:
    app, reached = routed_app()
    scope = http_scope("/api@admin", raw_path=b"/api@admin", root_path="/api")
    recorder = await call(app, scope)
    assert recorder.status == 400
    assert reached == []


async def test_websocket_target_not_starting_with_slash_is_refused() -> None:
    app = App()
    accepted: list[bool] = []

    @app.websocket("/admin")
    async def admin(websocket: WebSocket) -> None:
        accepted.append(True)
        await websocket.accept()

    sent: list[dict[str, Any]] = []
    incoming = [{"type": "websocket.connect"}]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "@admin", "raw_path": b"@admin", "root_path": "",
             "query_string": b"", "headers": [], "scheme": "ws", "server": ("h", 80),
             "asgi": {"version": "3.0"}, "subprotocols": []}
    await app(scope, receive, send)
    assert accepted == []
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": ""}]


async def test_bad_targets_go_through_exception_handlers_and_middleware() -> None:
    app, _ = routed_app()
    seen: list[str] = []

    @app.middleware
    async def record(request: Request, call_next: Any) -> Response:
        seen.append(str(request.url))
        return await call_next(request)

    @app.exception_handler(HTTPError)
    async def custom(request: Request, exc: HTTPError) -> Response:
        return JSONResponse({"error": exc.detail, "code": exc.status_code},
                            status_code=exc.status_code)

    recorder = await call(app, http_scope("@evil.com", raw_path=b"@evil.com"))
    assert recorder.status == 400
    assert msgspec.json.decode(recorder.body) == {
        "error": "The request target must be a path starting with '/'.", "code": 400}
    assert seen == ["http://testserver/@evil.com"]  # the URL keeps the server's authority

    # The same for a path that is not UTF-8 once decoded: the app's handler renders it.
    recorder = await call(app, http_scope("/\ufffd", raw_path=b"/%ff"))
    assert recorder.status == 400
    assert msgspec.json.decode(recorder.body) == {
        "error": "The request path is not valid UTF-8 once percent-decoded.", "code": 400}


async def test_bad_target_handler_for_bad_request_only() -> None:
    app, _ = routed_app()

    @app.exception_handler(BadRequest)
    async def custom(request: Request, exc: BadRequest) -> Response:
        return Response(b"nope", status_code=400)

    recorder = await call(app, http_scope("/%ff", raw_path=b"/%ff"))
    assert (recorder.status, recorder.body) == (400, b"nope")


async def test_https_redirect_never_sends_another_authority() -> None:
    app, reached = routed_app()
    wrapped = HTTPSRedirectMiddleware(app)
    scope = http_scope("@evil.com", raw_path=b"@evil.com",
                       headers=[(b"host", b"127.0.0.1")])
    recorder = await call(wrapped, scope)
    assert recorder.status == 400
    assert recorder.header(b"location") == []
    assert reached == []
    good = await call(wrapped, http_scope("/admin", headers=[(b"host", b"127.0.0.1")]))
    assert good.header(b"location") == [b"https://127.0.0.1/admin"]


# -- the Host header --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    ["example.com/health?x=", "a@b", "x#y", "a b", "foo?", "127.0.0.1:\u00b2", "h:99999",
     "h:-1", "[::1", "a\\b", "%zz"],
)
async def test_invalid_host_falls_back_to_the_server_address(host: str) -> None:
    app = App()

    @app.get("/where")
    async def where(request: Request) -> dict[str, Any]:
        url = request.url
        return {"url": str(url), "host": url.hostname, "port": url.port}

    scope = http_scope("/where", headers=[(b"host", host.encode("utf-8"))])
    scope["server"] = ("10.1.2.3", 8000)
    recorder = await call(app, scope)
    assert recorder.status == 200, recorder.body
    assert msgspec.json.decode(recorder.body) == {
        "url": "http://10.1.2.3:8000/where", "host": "10.1.2.3", "port": 8000}


@pytest.mark.parametrize(
    ("host", "expected"),
    [("example.com", ("example.com", None)), ("example.com:8080", ("example.com", 8080)),
     ("127.0.0.1:80", ("127.0.0.1", 80)), ("[::1]:8000", ("[::1]", 8000)),
     ("[fe80::1%25eth0]", ("[fe80::1%25eth0]", None)), ("h:", ("h", None)),
     ("xn--bcher-kva.example", ("xn--bcher-kva.example", None))],
)
def test_valid_hosts_are_used(host: str, expected: tuple[str, int | None]) -> None:
    assert split_host(host) == expected
    url = URL.from_scope({"scheme": "http", "path": "/p", "server": ("s", 1)}, host)
    assert url.hostname == expected[0]


TWO_HOSTS = [[(b"host", b"127.0.0.1"), (b"host", b"evil.com")],
             [(b"host", b"evil.com"), (b"accept", b"*/*"), (b"host", b"127.0.0.1")],
             [(b"host", b"127.0.0.1"), (b"Host", b"127.0.0.1")]]  # even the same one twice


def host_app() -> tuple[App, list[str]]:
    app = App()
    reached: list[str] = []

    @app.get("/url")
    async def url(request: Request) -> str:
        return str(request.url)

    @app.get("/plain")
    async def plain() -> str:
        reached.append("plain")
        return "no host needed"

    return app, reached


@pytest.mark.parametrize("headers", TWO_HOSTS)
async def test_two_host_headers_are_a_400_where_the_host_is_read(
        headers: list[tuple[bytes, bytes]]) -> None:
    app, reached = host_app()
    recorder = await call(app, http_scope("/url", headers=headers))
    assert recorder.status == 400
    assert recorder.header(b"content-type") == [b"application/problem+json"]
    assert msgspec.json.decode(recorder.body)["detail"] == (
        "The request has more than one Host header.")
    # Checked where a host is read, never per request (the scan would cost every request):
    # a route that reads no host has none to be confused about.
    recorder = await call(app, http_scope("/plain", headers=headers))
    assert (recorder.status, reached) == (200, ["plain"])


async def test_two_host_headers_go_through_the_exception_handlers() -> None:
    app, _ = host_app()

    @app.exception_handler(HTTPError)
    async def ours(request: Request, exc: HTTPError) -> Response:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    recorder = await call(app, http_scope("/url", headers=TWO_HOSTS[0]))
    assert recorder.status == 400
    assert msgspec.json.decode(recorder.body) == {
        "error": "The request has more than one Host header."}


@pytest.mark.parametrize("headers", TWO_HOSTS)
async def test_https_redirect_refuses_two_host_headers(
        headers: list[tuple[bytes, bytes]]) -> None:
    app, reached = host_app()
    recorder = await call(HTTPSRedirectMiddleware(app), http_scope("/plain", headers=headers))
    assert (recorder.status, recorder.header(b"location"), reached) == (400, [], [])


async def test_csrf_origin_check_refuses_two_host_headers() -> None:
    app, _ = host_app()

    @app.post("/save")
    async def save() -> str:
        return "saved"

    csrf = CSRFMiddleware(app, secret="s3cret")
    token = csrf.new_token()
    cookie = (b"cookie", f"csrftoken={token}".encode())
    own = [(b"origin", b"http://127.0.0.1"), cookie, (b"x-csrf-token", token.encode())]
    recorder = await call(csrf, http_scope("/save", method="POST",
                                           headers=[(b"host", b"127.0.0.1"), *own]))
    assert recorder.status == 200
    recorder = await call(csrf, http_scope("/save", method="POST",
                                           headers=[*TWO_HOSTS[0], *own]))
    assert recorder.status == 400
    assert msgspec.json.decode(recorder.body)["detail"] == (
        "The request has more than one Host header.")


async def test_the_debug_page_survives_two_host_headers() -> None:
    app = App(debug=True)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    scope = http_scope("/boom", headers=[*TWO_HOSTS[0], (b"accept", b"text/html")])
    recorder = await call(app, scope)
    assert recorder.status == 500
    assert b"/boom (The request has more than one Host header.)" in recorder.body


def test_host_header_reads_the_only_host() -> None:
    assert host_header([(b"accept", b"*/*"), (b"host", b"example.com")]) == b"example.com"
    assert host_header([(b"HOST", b"example.com")]) == b"example.com"
    assert host_header([(b"accept", b"*/*")]) is None
    for headers in TWO_HOSTS:
        with pytest.raises(BadRequest, match="more than one Host header"):
            host_header(headers)


def test_url_path_always_starts_with_slash() -> None:
    url = URL.from_scope({"scheme": "http", "path": "@evil.com", "server": ("s", 81)}, None)
    assert str(url) == "http://s:81/@evil.com"


async def test_deep_json_arriving_in_chunks_is_400() -> None:
    app = json_app()
    body = nested_array(DEPTHS[0])
    recorder = await call(app, http_scope("/raw", method="POST", headers=[
        (b"content-type", b"application/json")]), body_messages(body[:1500], body[1500:]))
    assert recorder.status == 400
