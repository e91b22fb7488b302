"""The segment-tree router: matching, converters, precedence, conflicts, url_path_for, groups."""

from __future__ import annotations

import gc
import re
import uuid
import weakref
from typing import Annotated, Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from joey import (
    App,
    Depends,
    HTTPError,
    JSONResponse,
    NotFound,
    ProblemResponse,
    Request,
    Route,
    RouteConflict,
    Router,
    WebSocket,
)
from joey._engine.tree import RouteTree
from joey.declarations import LateDeclaration
from joey.describe import describe
from joey.paths import (
    BadPath,
    Converter,
    FloatConverter,
    IntConverter,
    PathConverter,
    UUIDConverter,
    parse_template,
    routing_path,
)
from joey.routing import Mount
from joey.testing import TestClient
from joey.types import Receive, Scope, Send

from .asgi import call, close_test_clients, http_scope  # noqa: F401 - autouse fixture


async def _handler() -> None:  # a stand-in endpoint for tree-level tests
    return None


async def _asgi_stub(scope: Scope, receive: Receive, send: Send) -> None:
    return None


def _tree(*paths: str) -> RouteTree:
    tree = RouteTree()
    for path in paths:
        tree.add(Route(path, _handler, name=path))
    return tree


def _template(tree: RouteTree, path: str) -> str | None:
    match = tree.lookup(path)
    if match is None or match.endpoint is None:
        return None
    return match.endpoint.template


def _echo_app() -> App:
    """Routes that answer with which handler ran and the path params it got."""
    app = App()

    @app.get("/")
    async def root() -> str:
        return "root"

    @app.get("/a/b/c")
    async def nested() -> str:
        return "nested"

    @app.get("/items")
    async def items() -> str:
        return "items"

    @app.get("/dir/")
    async def directory() -> str:
        return "dir"

    @app.get("/users/me/settings")
    async def my_settings() -> str:
        return "settings"

    @app.get("/users/{user}/profile")
    async def profile(user: str) -> dict[str, str]:
        return {"profile": user}

    @app.get("/files/{rest:path}")
    async def files(rest: str) -> dict[str, str]:
        return {"rest": rest}

    return app


# --- matching -------------------------------------------------------------------------------------


def test_root_and_nested_paths() -> None:
    client = TestClient(_echo_app())
    assert client.get("/").text == "root"
    assert client.get("/a/b/c").text == "nested"
    assert client.get("/a/b").status_code == 404
    assert client.get("/a/b/c/d").status_code == 404


def test_unknown_path_is_404_problem() -> None:
    response = TestClient(_echo_app()).get("/nowhere")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404
    assert response.json()["title"] == "Not Found"


@pytest.mark.parametrize("path", ["/nowhere", '/say "hi"', "/caf\u00e9/\u2603", "/back\\slash",
                                  "/tab\tand\x7f", "/<script>"])
async def test_the_404_document_is_not_founds_problem_whatever_the_path(path: str) -> None:
    # Nobody customises 404s: the engine writes the document from a pre-encoded head (perf),
    # byte for byte what NotFound's problem document would be.
    recorder = await call(_echo_app(), http_scope(path))
    expected = ProblemResponse.from_error(NotFound(f"Nothing at {path}."))
    assert recorder.status == 404
    assert recorder.body == expected.body
    assert recorder.headers == expected.raw_headers(len(expected.body))


def test_a_handler_of_any_base_of_not_found_decides_the_404() -> None:
    app = App()

    @app.exception_handler(HTTPError)
    async def any_http_error(request: Request, exc: HTTPError) -> JSONResponse:
        return JSONResponse({"type": type(exc).__name__, "detail": exc.detail})

    assert TestClient(app).get("/nope").json() == {"type": "NotFound",
                                                   "detail": "Nothing at /nope."}


def test_trailing_slash_redirects_to_registered_form() -> None:
    client = TestClient(_echo_app(), follow_redirects=False)
    response = client.get("/items/")
    assert response.status_code == 308
    assert response.headers["location"] == "/items"
    response = client.get("/dir")
    assert response.status_code == 308
    assert response.headers["location"] == "/dir/"
    assert client.get("/items/", follow_redirects=True).text == "items"


def test_trailing_slash_without_the_other_form_is_404() -> None:
    client = TestClient(_echo_app(), follow_redirects=False)
    assert client.get("/nothing/").status_code == 404
    assert client.get("/a/b/c//").status_code == 404


def test_trailing_slash_redirect_can_be_disabled() -> None:
    app = App(redirect_slashes=False)

    @app.get("/items")
    async def items() -> str:
        return "items"

    assert TestClient(app).get("/items/").status_code == 404


def test_trailing_slash_redirect_only_for_get_and_head() -> None:
    app = App()

    @app.post("/items")
    async def create() -> str:
        return "created"

    client = TestClient(app, follow_redirects=False)
    # a 308 would make the client resend the body; a POST to the wrong form is simply 404
    assert client.post("/items/").status_code == 404


def test_repeated_slashes_are_not_collapsed() -> None:
    client = TestClient(_echo_app(), follow_redirects=False)
    assert client.get("/a//b/c").status_code == 404
    assert client.get("//a/b/c").status_code == 404
    assert client.get("/users//profile").status_code == 404


def test_several_methods_on_one_path_do_not_override_each_other() -> None:
    app = App()

    @app.get("/thing")
    async def read() -> str:
        return "read"

    @app.post("/thing")
    async def create() -> str:
        return "create"

    @app.route("/thing", methods=["PUT", "patch"])
    async def change(request: Request) -> str:
        return f"change via {request.method}"

    @app.delete("/thing")
    async def remove() -> str:
        return "remove"

    client = TestClient(app)
    assert client.get("/thing").text == "read"
    assert client.post("/thing").text == "create"
    assert client.put("/thing").text == "change via PUT"
    assert client.patch("/thing").text == "change via PATCH"
    assert client.delete("/thing").text == "remove"


def test_other_method_is_405_with_allow() -> None:
    app = App()

    @app.get("/only-get")
    async def only_get() -> str:
        return "ok"

    @app.post("/users/{id:int}")
    async def post_user(id: int) -> str:
        return "posted"

    client = TestClient(app)
    response = client.post("/only-get")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, OPTIONS"
    assert response.json()["status"] == 405
    response = client.get("/users/3")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST, OPTIONS"
    # a path that does not convert is not "this path with another method"
    assert client.get("/users/x").status_code == 404


# --- converters -----------------------------------------------------------------------------------


def _converter_app() -> App:
    app = App()

    @app.get("/str/{value}")
    async def as_str(value: str) -> dict[str, Any]:
        return {"value": value, "type": type(value).__name__}

    @app.get("/int/{value:int}")
    async def as_int(value: int) -> dict[str, Any]:
        return {"value": value, "type": type(value).__name__}

    @app.get("/float/{value:float}")
    async def as_float(value: float) -> dict[str, Any]:
        return {"value": value, "type": type(value).__name__}

    @app.get("/uuid/{value:uuid}")
    async def as_uuid(value: uuid.UUID) -> dict[str, Any]:
        return {"value": str(value), "type": type(value).__name__}

    @app.get("/path/{value:path}")
    async def as_path(value: str) -> dict[str, Any]:
        return {"value": value, "type": type(value).__name__}

    @app.get("/raw/{value:int}")
    async def raw(request: Request) -> dict[str, Any]:
        return {"type": type(request.path_params["value"]).__name__}

    return app


UID = "12345678-1234-5678-1234-567812345678"


@pytest.mark.parametrize(
    ("path", "value", "kind"),
    [
        ("/str/hello", "hello", "str"),
        ("/str/h%C3%A9llo", "héllo", "str"),
        ("/str/a%2Fb", "a/b", "str"),  # an encoded slash stays inside its segment
        ("/str/123", "123", "str"),
        ("/int/42", 42, "int"),
        ("/int/-7", -7, "int"),
        ("/int/007", 7, "int"),
        ("/float/1.5", 1.5, "float"),
        ("/float/-2", -2.0, "float"),
        ("/float/1e3", 1000.0, "float"),
        ("/uuid/" + UID, UID, "UUID"),
        ("/uuid/" + UID.replace("-", ""), UID, "UUID"),
        ("/uuid/" + UID.upper(), UID, "UUID"),
        ("/path/a", "a", "str"),
        ("/path/a/b/c.txt", "a/b/c.txt", "str"),
    ],
)
def test_converters_accept_good_values(path: str, value: Any, kind: str) -> None:
    response = TestClient(_converter_app()).get(path)
    assert response.status_code == 200, response.text
    assert response.json() == {"value": value, "type": kind}


@pytest.mark.parametrize(
    "path",
    [
        "/int/abc", "/int/1.5", "/int/+7", "/int/%207", "/int/1_000", "/int/-", "/int/" + "9" * 41,
        "/int/%D9%A3",  # an Arabic-Indic digit: str.isdigit() says yes, a URL means no
        "/float/abc", "/float/nan", "/float/inf", "/float/-Infinity", "/float/1e999",
        "/float/1_0", "/float/%201", "/float/0x10", "/float/%C2%BD",
        "/uuid/abc", "/uuid/" + "z" * 32, "/uuid/{" + UID + "}", "/uuid/urn:uuid:" + UID,
        "/uuid/" + UID[:-1] + "g",
        "/path", "/path/",
        "/str/", "/str",
    ],
)
def test_converters_refuse_bad_values_with_404(path: str) -> None:
    response = TestClient(_converter_app(), follow_redirects=False).get(path)
    assert response.status_code == 404, (path, response.status_code, response.text)


def test_converted_values_land_in_path_params() -> None:
    assert TestClient(_converter_app()).get("/raw/5").json() == {"type": "int"}


def test_converter_units() -> None:
    assert IntConverter().to_string(5) == "5"
    assert FloatConverter().to_string(2) == "2.0"
    assert UUIDConverter().to_string(UID.replace("-", "")) == UID
    assert PathConverter().to_string("a/b") == "a/b"
    with pytest.raises(ValueError, match="not an int"):
        IntConverter().to_string(True)
    with pytest.raises(ValueError, match="not an int"):
        IntConverter().to_string("5")
    with pytest.raises(ValueError, match="finite float"):
        FloatConverter().to_string(float("nan"))
    with pytest.raises(ValueError, match="finite float"):
        FloatConverter().to_string("1.0")
    with pytest.raises(ValueError):
        Converter().convert("")
    with pytest.raises(ValueError, match="valid str path segment"):
        Converter().to_string("")


# --- precedence -----------------------------------------------------------------------------------


def test_static_beats_parameter_and_falls_back_when_it_fails_deeper() -> None:
    client = TestClient(_echo_app())
    assert client.get("/users/me/settings").text == "settings"
    # "me" matches the static branch, which has no "profile": the parameter branch answers
    assert client.get("/users/me/profile").json() == {"profile": "me"}
    assert client.get("/users/bob/profile").json() == {"profile": "bob"}
    assert client.get("/users/bob/settings").status_code == 404


def test_typed_parameters_tried_most_specific_first() -> None:
    tree = _tree("/x/{v}", "/x/{v:float}", "/x/{v:int}", "/x/{v:uuid}")
    assert _template(tree, "/x/5") == "/x/{v:int}"
    assert _template(tree, "/x/5.5") == "/x/{v:float}"
    assert _template(tree, "/x/" + UID) == "/x/{v:uuid}"
    assert _template(tree, "/x/word") == "/x/{v}"


def test_parameter_branch_falls_back_to_catch_all() -> None:
    tree = _tree("/f/{name}/x", "/f/{rest:path}", "/f/static")
    assert _template(tree, "/f/static") == "/f/static"
    assert _template(tree, "/f/a/x") == "/f/{name}/x"
    match = tree.lookup("/f/a/y")
    assert match is not None and match.endpoint is not None
    assert match.endpoint.template == "/f/{rest:path}"
    assert match.params == {"rest": "a/y"}  # no leftover "name" from the failed branch


def test_catch_all_takes_the_rest_including_empty_inner_segments() -> None:
    client = TestClient(_echo_app(), follow_redirects=False)
    assert client.get("/files/a/b").json() == {"rest": "a/b"}
    assert client.get("/files/a//b/").json() == {"rest": "a//b/"}
    assert client.get("/files/").status_code == 404


def test_catch_all_does_not_shadow_specific_routes() -> None:
    app = App()

    @app.get("/{rest:path}")
    async def anything(rest: str) -> str:
        return f"catch-all {rest}"

    @app.get("/api/{id:int}")
    async def api(id: int) -> str:
        return f"api {id}"

    client = TestClient(app)
    assert client.get("/api/1").text == "api 1"
    assert client.get("/api/x").text == "catch-all api/x"
    assert client.get("/other").text == "catch-all other"


# --- shared prefixes: where the walk loops, and where it comes back (issue 29) -------------------


def _shared_prefix_app() -> App:
    """Routes under one prefix with a static child, typed and untyped parameters and a
    catch-all at the same node; each answers with its name and the path parameters it got."""
    app = App()

    def answer(name: str) -> Any:
        async def handler(request: Request) -> dict[str, Any]:
            return {"route": name, "params": request.path_params}

        return handler

    for template in (
        "/api/v1/users", "/api/v1/users/me", "/api/v1/users/me/posts/latest",
        "/api/v1/users/{id:int}", "/api/v1/users/{id:int}/posts/{pid:int}/edit",
        "/api/v1/users/{id}/posts/{slug}/view", "/api/v1/users/{id}/about",
        "/api/v1/{rest:path}",
    ):
        app.get(template)(answer(template))
    return app


@pytest.mark.parametrize(("path", "route", "params"), [
    ("/api/v1/users", "/api/v1/users", {}),
    ("/api/v1/users/me", "/api/v1/users/me", {}),
    ("/api/v1/users/me/posts/latest", "/api/v1/users/me/posts/latest", {}),
    ("/api/v1/users/5", "/api/v1/users/{id:int}", {"id": 5}),
    ("/api/v1/users/5/posts/7/edit", "/api/v1/users/{id:int}/posts/{pid:int}/edit",
     {"id": 5, "pid": 7}),
    # the int branch takes 5 and 7, then fails on "view": the str branch answers, and nothing
    # the failed branch converted is left in the parameters
    ("/api/v1/users/5/posts/7/view", "/api/v1/users/{id}/posts/{slug}/view",
     {"id": "5", "slug": "7"}),
    ("/api/v1/users/5/about", "/api/v1/users/{id}/about", {"id": "5"}),
    # "me" is a static child, which fails deeper ("about"): the str parameter takes it
    ("/api/v1/users/me/about", "/api/v1/users/{id}/about", {"id": "me"}),
    # the static, the int and the str branches all fail deeper: the catch-all answers
    ("/api/v1/users/me/posts/3", "/api/v1/{rest:path}", {"rest": "users/me/posts/3"}),
    ("/api/v1/users/5/posts/7/delete", "/api/v1/{rest:path}",
     {"rest": "users/5/posts/7/delete"}),
    ("/api/v1/other", "/api/v1/{rest:path}", {"rest": "other"}),
    ("/api/v1/users/-3", "/api/v1/users/{id:int}", {"id": -3}),
    ("/api/v1/users/0042", "/api/v1/users/{id:int}", {"id": 42}),
    ("/api/v1/users/\u0665", "/api/v1/users/{id}/about", None),  # a non-ASCII digit: not an int
])
def test_shared_prefix_routes_fall_back_in_order(
    path: str, route: str, params: dict[str, Any] | None,
) -> None:
    response = TestClient(_shared_prefix_app()).get(path)
    if params is None:
        assert response.json()["route"] == "/api/v1/{rest:path}"
        return
    assert response.json() == {"route": route, "params": params}


def test_a_failed_one_way_branch_leaves_no_parameters_for_the_404() -> None:
    app = App()

    @app.get("/api/v1/users/{id:int}/posts/{pid:int}")
    async def post(id: int, pid: int) -> str:
        return "post"

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"params": request.path_params})

    client = TestClient(app)
    assert client.get("/api/v1/users/5/posts/7").text == "post"
    assert client.get("/api/v1/users/5/posts/x").json() == {"params": {}}
    assert client.get("/api/v1/users/5/posts/7/more").json() == {"params": {}}


def test_a_mount_at_a_shared_prefix_takes_what_the_routes_below_refuse() -> None:
    app = App()

    async def mounted(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"mounted"})

    app.mount("/api", mounted)

    @app.get("/api/v1/users/{id:int}")
    async def user(id: int) -> str:
        return f"user {id}"

    client = TestClient(app)
    assert client.get("/api/v1/users/5").text == "user 5"
    assert client.get("/api/v1/users/x").text == "mounted"
    assert client.get("/api/v1/users/5/more").text == "mounted"


# The tree against a reference that reads the precedence rule literally: of every template
# that matches, the one whose segments rank lowest, position by position (static, then the
# typed parameters by converter priority, then the catch-all).
_PARTS = ("a", "b", "{p}", "{p:int}", "{p:float}", "{p:uuid}")
_PATH_SEGMENTS = ("a", "b", "7", "-3", "1.5", "x", "", UID)


def _reference(templates: list[str], segments: list[str]) -> tuple[str, dict[str, Any]] | None:
    best: tuple[list[int], str, dict[str, Any]] | None = None
    for template in templates:
        ranked = _ranked(template, segments)
        if ranked is not None and (best is None or ranked[0] < best[0]):
            best = (ranked[0], template, ranked[1])
    return None if best is None else (best[1], best[2])


def _ranked(template: str, segments: list[str]) -> tuple[list[int], dict[str, Any]] | None:
    """The ranks of ``template``'s segments and its parameters, if it matches ``segments``."""
    parsed = parse_template(template)
    ranks: list[int] = []
    params: dict[str, Any] = {}
    for index, segment in enumerate(parsed):
        converter, name = segment.converter, segment.name or ""
        if converter is not None and segment.is_catch_all:
            rest = "/".join(segments[index:])
            if not rest:
                return None
            params[name] = rest
            return [*ranks, converter.priority], params
        if index >= len(segments):
            return None
        if converter is None:
            if segment.text != segments[index]:
                return None
            ranks.append(0)
            continue
        try:
            params[name] = converter.convert(segments[index])
        except ValueError:
            return None
        ranks.append(converter.priority)
    return (ranks, params) if len(parsed) == len(segments) else None


@st.composite
def _templates(draw: st.DrawFn) -> list[str]:
    templates = set()
    for parts in draw(st.lists(st.lists(st.sampled_from(_PARTS), max_size=4), max_size=12)):
        named = [part.replace("{p", f"{{p{index}") for index, part in enumerate(parts)]
        if draw(st.booleans()) and draw(st.booleans()):
            named.append("{rest:path}")
        templates.add("/" + "/".join(named))
    return sorted(templates)


@settings(max_examples=300, deadline=None)
@given(_templates(), st.lists(st.lists(st.sampled_from(_PATH_SEGMENTS), max_size=5), max_size=8))
def test_the_walk_finds_what_the_precedence_rule_says(
    templates: list[str], paths: list[list[str]],
) -> None:
    tree = _tree(*templates)
    for drawn in paths:
        path = "/" + "/".join(drawn)
        expected = _reference(templates, path[1:].split("/") if path != "/" else [])
        match = tree.lookup(path)
        found = None if match is None or match.endpoint is None else (
            match.endpoint.template, match.params)
        assert found == expected, path


# --- conflicts ------------------------------------------------------------------------------------


def test_same_method_twice_is_a_conflict_naming_both_handlers() -> None:
    app = App()

    @app.get("/dup/{id}")
    async def first_handler(id: str) -> None: ...

    @app.route("/dup/{id}", methods=["POST", "GET"])
    async def second_handler(id: str) -> None: ...

    with pytest.raises(RouteConflict) as info:
        app.url_path_for("first_handler", id="1")
    message = str(info.value)
    assert "GET /dup/{id} is registered twice" in message
    assert "first_handler" in message and "second_handler" in message
    assert "test_routing.py" in message  # where they are defined


def test_conflict_is_raised_at_startup() -> None:
    app = App()

    @app.get("/")
    async def one() -> None: ...

    @app.get("/")
    async def two() -> None: ...

    with pytest.raises(Exception, match=r"one.*two"), TestClient(app):
        pass  # pragma: no cover - startup fails


def test_differently_named_parameters_at_one_position_conflict() -> None:
    app = App()

    @app.get("/u/{id}")
    async def by_id(id: str) -> None: ...

    @app.get("/u/{name}/posts")
    async def by_name(name: str) -> None: ...

    with pytest.raises(RouteConflict) as info:
        app.url_path_for("by_id", id="1")
    message = str(info.value)
    assert "by_id" in message and "by_name" in message
    assert "'id' and 'name'" in message
    assert "position 2" in message


def test_differently_named_catch_alls_conflict() -> None:
    tree = RouteTree()
    tree.add(Route("/f/{a:path}", _handler, name="a"))

    async def other() -> None: ...

    with pytest.raises(RouteConflict, match=r"catch-all parameters named 'a' and 'b'"):
        tree.add(Route("/f/{b:path}", other))


def test_same_shape_different_methods_is_not_a_conflict() -> None:
    tree = RouteTree()
    tree.add(Route("/r/{id:int}", _handler, methods=["GET"]))
    tree.add(Route("/r/{id:int}", _handler, methods=["POST"]))
    tree.add(Route("/r/{id:int}", _handler, methods=["GET"], websocket=True))
    tree.add(Route("/c/{p:path}", _handler, methods=["GET"]))
    tree.add(Route("/c/{p:path}", _handler, methods=["PUT"]))
    endpoint = tree.lookup("/r/1")
    assert endpoint is not None and endpoint.endpoint is not None
    assert endpoint.endpoint.allow_header == "GET, HEAD, POST, OPTIONS"


def test_two_websocket_handlers_on_one_path_conflict() -> None:
    tree = RouteTree()
    tree.add(Route("/ws", _handler, websocket=True))

    async def second_ws() -> None: ...

    with pytest.raises(RouteConflict, match=r"two websocket handlers.*"):
        tree.add(Route("/ws", second_ws, websocket=True))


def test_two_mounts_at_one_path_conflict() -> None:
    tree = RouteTree()
    tree.add_mount(Mount("/m", _asgi_stub))
    with pytest.raises(RouteConflict, match="Two apps are mounted at '/m'"):
        tree.add_mount(Mount("/m/", _asgi_stub))


# --- templates ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("no-slash", "must start with '/'"),
        ("/{1bad}", "not a valid parameter name"),
        ("/{a}/{a}", "appears twice"),
        ("/{a:nope}", "unknown converter 'nope'"),
        ("/{a:path}/b", "must be the last segment"),
        ("/x{a}", "must fill a whole segment"),
        ("/a}", "must fill a whole segment"),
    ],
)
def test_bad_templates_fail_at_the_decorator(path: str, message: str) -> None:
    app = App()
    with pytest.raises(ValueError, match=message):
        app.get(path)(_handler)


def test_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError, match="Unknown HTTP method 'FETCH'"):
        Route("/", _handler, methods=["FETCH"])


def test_parse_template_segments() -> None:
    assert parse_template("/") == []
    segments = parse_template("/a/{b:int}/{c:path}")
    assert [s.text for s in segments] == ["a", "{b:int}", "{c:path}"]
    assert [s.is_param for s in segments] == [False, True, True]
    assert [s.is_catch_all for s in segments] == [False, False, True]


def test_mount_path_cannot_hold_parameters() -> None:
    with pytest.raises(ValueError, match="cannot contain parameters"):
        Mount("/m/{x}", _asgi_stub)


def test_describe_names_function_file_and_line() -> None:
    text = describe(_handler)
    assert text.startswith("tests.test_routing._handler (")
    assert "test_routing.py:" in text
    assert describe(len) == "builtins.len"  # no source: name only


def test_route_repr() -> None:
    assert repr(Route("/r", _handler, methods=["GET", "POST"])) == "<Route GET,POST /r → _handler>"
    assert repr(Route("/w", _handler, websocket=True)) == "<Route WS /w → _handler>"
    assert repr(Router("/p")) == "<Router prefix='/p' routes=0>"


# --- url_path_for ---------------------------------------------------------------------------------


def test_url_path_for() -> None:
    app = App()

    @app.get("/")
    async def home() -> None: ...

    @app.get("/users/{id:int}/posts/{slug}")
    async def post(id: int, slug: str) -> None: ...

    @app.get("/static/{file:path}", name="static")
    async def static_file(file: str) -> None: ...

    @app.get("/at/{when:float}/{key:uuid}")
    async def at(when: float, key: uuid.UUID) -> None: ...

    assert app.url_path_for("home") == "/"
    assert app.url_path_for("post", id=42, slug="hello") == "/users/42/posts/hello"
    # values are percent-encoded; a catch-all keeps its slashes
    assert app.url_path_for("post", id=1, slug="a b?c#d%") == "/users/1/posts/a%20b%3Fc%23d%25"
    assert app.url_path_for("post", id=1, slug="é") == "/users/1/posts/%C3%A9"
    assert app.url_path_for("static", file="css/a b.css") == "/static/css/a%20b.css"
    assert app.url_path_for("at", when=1.5, key=uuid.UUID(UID)) == f"/at/1.5/{UID}"


def test_url_path_for_round_trips_through_the_router() -> None:
    app = App()

    @app.get("/items/{name}")
    async def item(name: str) -> str:
        return name

    client = TestClient(app)
    for value in ["plain", "with space", "q?uery", "hash#tag", "pct%41", "ünï", "a+b"]:
        assert client.get(app.url_path_for("item", name=value)).text == value


def test_url_path_for_errors_are_clear() -> None:
    app = App()

    @app.get("/users/{id:int}")
    async def user(id: int) -> None: ...

    with pytest.raises(LookupError, match="No route named 'nope'"):
        app.url_path_for("nope")
    with pytest.raises(LookupError, match=r"takes parameters \{id\}, got \{\}"):
        app.url_path_for("user")
    with pytest.raises(LookupError, match=r"takes parameters \{id\}, got \{id, x\}"):
        app.url_path_for("user", id=1, x=2)
    with pytest.raises(ValueError, match="not an int"):
        app.url_path_for("user", id="abc")


def test_url_path_for_picks_the_variant_with_matching_params() -> None:
    app = App()

    @app.get("/list", name="items")
    async def items_all() -> None: ...

    @app.get("/list/{page:int}", name="items")
    async def items_page(page: int) -> None: ...

    assert app.url_path_for("items") == "/list"
    assert app.url_path_for("items", page=2) == "/list/2"


def test_url_path_for_with_named_routers_and_prefixes() -> None:
    app = App()
    api = Router(prefix="/api", name="api")
    v1 = Router(prefix="/v1", name="v1")
    anonymous = Router(prefix="/anon")

    @v1.get("/users/{id:int}")
    async def get_user(id: int) -> dict[str, int]:
        return {"id": id}

    @anonymous.get("/thing")
    async def thing() -> str:
        return "thing"

    api.include_router(v1)
    api.include_router(anonymous, prefix="/x")
    app.include_router(api, prefix="/root")

    assert app.url_path_for("api.v1.get_user", id=3) == "/root/api/v1/users/3"
    assert app.url_path_for("api.thing") == "/root/api/x/anon/thing"
    with pytest.raises(LookupError):
        app.url_path_for("get_user", id=3)
    client = TestClient(app)
    assert client.get("/root/api/v1/users/3").json() == {"id": 3}
    assert client.get("/root/api/x/anon/thing").text == "thing"


# --- routers --------------------------------------------------------------------------------------


def test_router_prefixes_and_nesting() -> None:
    app = App()
    outer = Router(prefix="/outer")
    inner = Router(prefix="/inner")
    bare = Router()

    @outer.get("")
    async def outer_root() -> str:
        return "outer root"

    @inner.get("/")
    async def inner_root() -> str:
        return "inner root"

    @inner.post("/leaf/{id:int}", status_code=201)
    async def leaf(id: int) -> dict[str, int]:
        return {"leaf": id}

    @bare.get("/bare")
    async def bare_route() -> str:
        return "bare"

    outer.include_router(inner, prefix="/p")
    app.include_router(outer)
    app.include_router(bare, prefix="/b")

    client = TestClient(app)
    assert client.get("/outer").text == "outer root"
    assert client.get("/outer/p/inner").text == "inner root"
    response = client.post("/outer/p/inner/leaf/9")
    assert response.status_code == 201
    assert response.json() == {"leaf": 9}
    assert client.get("/b/bare").text == "bare"
    assert client.get("/inner").status_code == 404


def test_routes_added_after_include_are_seen_until_the_app_starts() -> None:
    app = App()
    router = Router(prefix="/late")
    app.include_router(router)

    @router.get("/x")
    async def x() -> str:
        return "x"

    client = TestClient(app)
    assert client.get("/late/x").text == "x"
    with pytest.raises(LateDeclaration, match=r"routes of <Router prefix='/late'"):
        router.get("/y")(x)
    assert client.get("/late/y").status_code == 404


def test_router_prefix_validation_and_cycles() -> None:
    with pytest.raises(ValueError, match="must start and not end"):
        Router(prefix="api")
    with pytest.raises(ValueError, match="must start and not end"):
        Router(prefix="/api/")
    router = Router()
    with pytest.raises(ValueError, match="cannot include itself"):
        router.include_router(router)
    with pytest.raises(ValueError, match="must start and not end"):
        router.include_router(Router(), prefix="x")
    a, b, c = Router(prefix="/a"), Router(prefix="/b"), Router(prefix="/c")
    a.include_router(b)
    b.include_router(c)
    with pytest.raises(ValueError, match="would make a cycle"):
        c.include_router(a)
    c.children.append((a, ""))  # bypassing include_router: walk() still refuses to loop
    with pytest.raises(ValueError, match="through a cycle"):
        list(a.walk())


def test_route_with_prefix_join_rejects_relative_prefix() -> None:
    route = Route("/x", _handler)
    with pytest.raises(ValueError, match="must start with '/'"):
        route.with_prefix("rel", (), (), "")


# --- routing_path: raw path decoding --------------------------------------------------------------


def _scope(path: str, raw_path: bytes | None = None, root_path: str = "") -> dict[str, Any]:
    scope: dict[str, Any] = {"type": "http", "path": path, "root_path": root_path}
    if raw_path is not None:
        scope["raw_path"] = raw_path
    return scope


def test_routing_path() -> None:
    assert routing_path(_scope("/a/b", b"/a/b")) == ("/a/b", None)
    assert routing_path(_scope("/a/b")) == ("/a/b", None)
    assert routing_path(_scope("/a/b/c", b"/a/b%2Fc")) == ("/a/b/c", ["a", "b/c"])
    assert routing_path(_scope("/app/x y", b"/app/x%20y", "/app")) == ("/x y", ["x y"])
    assert routing_path(_scope("/app", b"/app", "/app")) == ("/", None)
    assert routing_path(_scope("/%", b"/%25")) == ("/%", ["%"])
    with pytest.raises(BadPath, match="not valid UTF-8"):
        routing_path(_scope("/\ufffd", b"/%ff"))


def test_encoded_slash_stays_in_its_segment() -> None:
    tree = _tree("/a/{x}", "/a/{x}/{y}")
    match = tree.lookup("/a/b/c", ["a", "b/c"])
    assert match is not None and match.endpoint is not None
    assert match.endpoint.template == "/a/{x}"
    assert match.params == {"x": "b/c"}
    match = tree.lookup("/", [])
    assert match is None


# a route decorated at module level (not inside a function) has no local namespace to keep
_MODULE_APP = App()


@_MODULE_APP.get("/module/{n:int}")
async def _module_route(n: int) -> int:
    return n + 1


def test_module_level_route() -> None:
    assert TestClient(_MODULE_APP).get("/module/1").text == "2"


def test_every_decorator_registers_its_method() -> None:
    router = Router()
    for method in ("get", "post", "put", "patch", "delete", "head", "options"):
        getattr(router, method)("/m")(_handler)
    assert [r.methods for r in router.routes] == [
        ("GET",), ("POST",), ("PUT",), ("PATCH",), ("DELETE",), ("HEAD",), ("OPTIONS",),
    ]


def test_conflict_with_a_websocket_only_path_names_it() -> None:
    tree = RouteTree()

    async def socket_handler() -> None: ...

    async def http_handler() -> None: ...

    tree.add(Route("/u/{id}", socket_handler, websocket=True))
    with pytest.raises(RouteConflict, match=r"socket_handler.*'id' and 'name'"):
        tree.add(Route("/u/{name}", http_handler))


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("/u/{id}/a", "/u/{name}/b"),  # the first endpoint is deeper down, behind a static
        ("/u/{id}/{rest:path}", "/u/{name}"),  # ... or behind a catch-all
        ("/u/{id}/{x:int}", "/u/{name}"),  # ... or behind another parameter
    ],
)
def test_parameter_name_conflicts_find_the_other_route(first: str, second: str) -> None:
    tree = RouteTree()

    async def first_handler() -> None: ...

    async def second_handler() -> None: ...

    tree.add(Route(first, first_handler))
    with pytest.raises(RouteConflict, match=rf"first_handler \(.*\) \(path '{first}'\)"):
        tree.add(Route(second, second_handler))


def test_routing_path_of_a_mount_root_with_encoded_root_path() -> None:
    assert routing_path(_scope("/a b/", b"/a%20b/", "/a b")) == ("/", [])


# --- what a route keeps of the function that declared it ---------------------------------------


class _Big:
    """What a factory or a test holds in its locals: a connection pool, a big cache."""


def _declare_in_a_function(app: App) -> weakref.ref[_Big]:
    big = _Big()  # named by no annotation: a route must not keep it alive

    class Item(msgspec.Struct):  # named by the annotations below: kept, and resolved
        name: str

    async def current_item(name: str) -> Item:  # a local dependency that names a local class
        return Item(name)

    @app.get("/items")
    async def read(item: Annotated[Item, Depends(current_item)]) -> Item:
        return item

    @app.websocket("/ws")
    async def socket(websocket: WebSocket, item: Annotated[Item, Depends(current_item)]) -> None:
        await websocket.accept()
        await websocket.send_text(item.name)
        await websocket.close()

    return weakref.ref(big)


def test_route_decorators_keep_no_other_local_of_the_defining_function_alive() -> None:
    app = App()
    big = _declare_in_a_function(app)
    gc.collect()
    assert big() is None
    client = TestClient(app)
    assert client.get("/items?name=x").json() == {"name": "x"}
    with client.websocket_connect("/ws?name=y") as websocket:
        assert websocket.receive_text() == "y"
    assert [sorted(route.namespace or {}) for route in app.router.routes] == [
        ["Item", "current_item"], ["Item", "current_item"]]


def test_a_handler_naming_only_builtins_keeps_no_namespace() -> None:
    router = Router()

    @router.get("/n/{n:int}")
    async def plus_one(n: int) -> dict[str, int]:
        return {"n": n + 1}

    assert router.routes[0].namespace is None


@pytest.mark.parametrize(("keyword", "fix"), [
    ("response_model", "annotate the handler's return type"),
    ("response_class", "return that response class"),
    ("summary", "docstring"),
    ("operation_id", "name="),
])
def test_a_fastapi_route_keyword_is_refused_naming_the_fix(keyword: str, fix: str) -> None:
    app = App()
    with pytest.raises(TypeError, match=rf"{keyword}= is FastAPI's; in Joey, .*{re.escape(fix)}"):
        app.get("/x", **{keyword: dict})  # type: ignore[misc]
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        app.post("/x", colour="red")  # type: ignore[call-arg]
