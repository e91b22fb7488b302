"""Startup errors of the parameter machinery: each names the handler (file:line) and the fix."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import msgspec
import pytest

from joey import (
    App,
    BackgroundTasks,
    Body,
    Depends,
    Form,
    Header,
    Path,
    Query,
    Request,
    Router,
    WebSocket,
)
from joey.params.markers import ParamMarker
from joey.testing import LifespanError, TestClient

from .asgi import close_test_clients  # noqa: F401 - autouse fixture


class Item(msgspec.Struct):
    name: str


class Opaque:
    """Not something msgspec can decode."""


def request_scoped() -> str:
    return "per request"


def needs_request_value(token: Annotated[str, Header()]) -> str:
    return token


def app_needs_request_scoped(value: Annotated[str, Depends(request_scoped)]) -> str:
    return value


def first(value: Annotated[str, Depends(lambda: "x")]) -> str:
    return value


class Strange(ParamMarker):
    """A marker Joey does not know."""


def cycle_a(b: Annotated[str, Depends(lambda: "")]) -> str:
    return b


def cycle_b(a: Annotated[str, Depends(cycle_a)]) -> str:
    return a


# cycle_a depends on cycle_b, which depends on cycle_a
cycle_a.__annotations__["b"] = Annotated[str, Depends(cycle_b)]


def _http(handler: Callable[..., Any], **route: Any) -> App:
    app = App()
    app.post("/thing", **route)(handler)
    return app


def _ws(handler: Callable[..., Any]) -> App:
    app = App()
    app.websocket("/ws")(handler)
    return app


async def many_args(*args: Any) -> str:
    return ""


async def two_bodies(a: Item, b: Item) -> str:
    return ""


async def two_markers(x: Annotated[str, Query(), Header()]) -> str:
    return ""


async def ambiguous_body(x: Annotated[Item | dict[str, int], Body()]) -> str:
    return ""


async def opaque_query(x: Opaque) -> str:
    return ""


async def strange_marker(x: Annotated[str, Strange()]) -> str:
    return ""


async def websocket_on_http(ws: WebSocket) -> str:
    return ""


async def cyclic(value: Annotated[str, Depends(cycle_a)]) -> str:
    return value


async def app_scoped_with_request_parameter(
    value: Annotated[str, Depends(needs_request_value, scope="app")],
) -> str:
    return value


async def app_scoped_on_request_scoped(
    value: Annotated[str, Depends(app_needs_request_scoped, scope="app")],
) -> str:
    return value


async def plain() -> str:
    return ""


async def ws_with_body(websocket: WebSocket, item: Item) -> None:
    return None


async def ws_with_form(websocket: WebSocket, name: Annotated[str, Form()]) -> None:
    return None


async def ws_with_background(websocket: WebSocket, tasks: BackgroundTasks) -> None:
    return None


async def ws_with_request(request: Request) -> None:
    return None


def unreadable_signature() -> str:
    return ""


unreadable_signature.__annotations__["return"] = "NoSuchName"  # get_type_hints fails


@pytest.mark.parametrize(
    ("build", "handler", "message"),
    [
        (lambda: _http(many_args), "many_args", "has *args/**kwargs"),
        (lambda: _http(two_bodies), "two_bodies", "several body parameters ['a', 'b']"),
        (lambda: _http(two_markers), "two_markers", "has several sources"),
        (lambda: _http(ambiguous_body), "ambiguous_body", "has a type msgspec cannot decode"),
        (lambda: _http(opaque_query), "opaque_query", "cannot read from a query string"),
        (lambda: _http(strange_marker), "strange_marker", "unknown marker Strange()"),
        (lambda: _http(websocket_on_http), "websocket_on_http",
         "asks for a WebSocket, but this is an HTTP route"),
        (lambda: _http(cyclic), "cyclic", "dependency cycle"),
        (lambda: _http(app_scoped_with_request_parameter), "app_scoped_with_request_parameter",
         "cannot take request parameters"),
        (lambda: _http(app_scoped_on_request_scoped), "app_scoped_on_request_scoped",
         "cannot depend on request-scoped"),
        (lambda: _http(plain, dependencies=[request_scoped]), "plain",
         "route dependencies must be Depends(...)"),
        (lambda: _http(unreadable_signature), "unreadable_signature",
         "cannot read the signature"),
        (lambda: _ws(ws_with_body), "ws_with_body", "reads a body; WebSocket routes"),
        (lambda: _ws(ws_with_form), "ws_with_form", "reads a form; WebSocket routes"),
        (lambda: _ws(ws_with_background), "ws_with_background",
         "BackgroundTasks are for HTTP routes"),
        (lambda: _ws(ws_with_request), "ws_with_request",
         "asks for a Request, but this is a WebSocket route"),
    ],
)
def test_startup_error_names_the_handler_and_the_problem(
    build: Callable[[], App], handler: str, message: str
) -> None:
    app = build()
    with pytest.raises(LifespanError) as failed, TestClient(app):
        pass
    text = str(failed.value)
    assert handler in text
    assert "test_params_plan.py:" in text  # the handler's file and line
    assert message in text


def test_depends_scope_is_checked_where_it_is_written() -> None:
    with pytest.raises(ValueError, match="Depends scope must be 'request', 'function' or 'app'"):
        Depends(request_scoped, scope="session")  # type: ignore[arg-type]


def test_startup_error_without_a_lifespan_is_raised_by_the_first_request() -> None:
    app = _http(two_bodies)
    client = TestClient(app)  # no `with`: no lifespan, the first request builds the app
    with pytest.raises(TypeError, match="several body parameters"):
        client.post("/thing", json={})


# -- a path parameter nobody takes (issue #26 §1) ------------------------------------------


def test_a_misspelt_path_parameter_is_a_startup_error_naming_both_names() -> None:
    app = App()

    @app.get("/tasks/{task_id}")
    async def task(taskid: int) -> int:
        return taskid  # pragma: no cover

    with pytest.raises(LifespanError) as failed, TestClient(app):
        pass
    text = str(failed.value)
    assert "test_params_plan.py:" in text
    assert "the route's path has {task_id}, which no parameter takes" in text
    assert "parameter 'taskid' is read from the query string" in text
    assert "rename 'taskid' to 'task_id'" in text
    assert "`taskid: Annotated[T, Query()]`" in text


def test_a_path_parameter_of_a_router_prefix_counts_too() -> None:
    projects = Router(prefix="/projects/{project_id:int}")

    @projects.get("/tasks/{task_id:int}")
    async def task(projectid: int, task_id: int, verbose: bool = False) -> list[int]:
        return [projectid, task_id]  # pragma: no cover

    app = App()
    app.include_router(projects)
    with pytest.raises(TypeError, match=r"has \{project_id\}, which no parameter takes, and "
                                        r"parameter 'projectid'"):
        app.freeze()


def project_of(project_id: int) -> int:
    return project_id


def test_a_path_parameter_taken_by_a_dependency_or_left_on_purpose_is_fine() -> None:
    projects = Router(prefix="/projects/{project_id:int}",
                      dependencies=[Depends(project_of)])

    @projects.get("/tasks/{task_id:int}")
    async def task(task_id: int, verbose: bool = False) -> list[Any]:
        return [task_id, verbose]

    app = App()
    app.include_router(projects)

    @app.get("/files/{name}")  # reads the path itself; `q` is explicitly a query parameter
    async def file(request: Request, q: Annotated[str, Query()] = "") -> list[str]:
        return [request.path_params["name"], q]

    @app.get("/renamed/{task_id}")  # the fix the error suggests
    async def renamed(taskid: Annotated[int, Path("task_id")], q: str = "") -> int:
        return taskid

    @app.get("/ignored/{anything}")  # nothing read from the query: nothing to confuse
    async def ignored() -> str:
        return "constant"

    client = TestClient(app)
    assert client.get("/projects/1/tasks/2?verbose=true").json() == [2, True]
    assert client.get("/files/a.txt?q=x").json() == ["a.txt", "x"]
    assert client.get("/renamed/7").json() == 7
    assert client.get("/ignored/x").text == "constant"


async def _awaitable_result() -> str:
    return "x"  # pragma: no cover


def test_a_handler_declared_to_return_an_awaitable_is_refused_at_startup() -> None:
    from collections.abc import Awaitable, Coroutine

    async def awaitable() -> Awaitable[str]:
        return _awaitable_result()  # pragma: no cover

    def coroutine() -> Coroutine[Any, Any, str]:
        return _awaitable_result()  # pragma: no cover

    for handler in (awaitable, coroutine):
        app = App()
        app.get("/")(handler)
        with pytest.raises(TypeError, match=r"the handler is declared to return an awaitable "
                                            r".*Make it `async def`, `await` inside it"):
            app.freeze()


def test_a_positional_only_parameter_is_refused_at_startup() -> None:
    async def positional(q: str, /) -> str:
        return q  # pragma: no cover

    def positional_dependency(token: Annotated[str, Header()], /) -> str:
        return token  # pragma: no cover

    async def uses_it(user: Annotated[str, Depends(positional_dependency)]) -> str:
        return user  # pragma: no cover

    for handler, name in ((positional, "q"), (uses_it, "token")):
        app = App()
        app.get("/")(handler)
        with pytest.raises(LifespanError) as failed, TestClient(app):
            pass
        text = str(failed.value)
        assert f"parameter {name!r} of " in text
        assert "is positional-only (before a `/`)" in text
        assert "remove the `/`" in text
        assert "test_params_plan.py:" in text
