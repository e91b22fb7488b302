"""HTTP errors as exceptions, answered as RFC 9457 problem details."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from http import HTTPStatus
from types import ModuleType

import pytest

import joey
import joey.exceptions
import joey.responses
from joey import (
    App,
    BadRequest,
    Conflict,
    ContentTooLarge,
    Forbidden,
    Gone,
    HTTPError,
    InternalServerError,
    MethodNotAllowed,
    NotAcceptable,
    NotFound,
    PlainTextResponse,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    UnprocessableContent,
    UnsupportedMediaType,
    WebSocketDisconnect,
    status,
)
from joey.requests import Request
from joey.responses import Response
from joey.testing import TestClient

from .asgi import close_test_clients  # noqa: F401 - autouse fixture

NAMED = [
    (BadRequest, 400, "Bad Request"),
    (Unauthorized, 401, "Unauthorized"),
    (Forbidden, 403, "Forbidden"),
    (NotFound, 404, "Not Found"),
    (NotAcceptable, 406, "Not Acceptable"),
    (Conflict, 409, "Conflict"),
    (Gone, 410, "Gone"),
    (ContentTooLarge, 413, "Content Too Large"),
    (UnsupportedMediaType, 415, "Unsupported Media Type"),
    (UnprocessableContent, 422, "Unprocessable Content"),
    (TooManyRequests, 429, "Too Many Requests"),
    (InternalServerError, 500, "Internal Server Error"),
    (ServiceUnavailable, 503, "Service Unavailable"),
]


@pytest.mark.parametrize(("cls", "code", "title"), NAMED)
def test_named_errors(cls: type[BadRequest], code: int, title: str) -> None:
    error = cls("what went wrong", headers={"x-e": "1"})
    assert isinstance(error, HTTPError)
    assert error.status_code == code
    assert error.to_problem() == {
        "type": "about:blank", "title": title, "status": code, "detail": "what went wrong",
    }
    assert error.headers == {"x-e": "1"}
    assert str(error) == "what went wrong"
    assert repr(error) == f"{cls.__name__}(status_code={code}, detail='what went wrong')"


def test_http_error_defaults_and_extras() -> None:
    error = HTTPError()
    assert error.status_code == 500
    assert error.to_problem() == {"type": "about:blank", "title": "Internal Server Error",
                                  "status": 500}
    assert str(error) == "Internal Server Error"
    error = HTTPError(HTTPStatus.IM_A_TEAPOT, extra={"errors": [{"loc": "x"}]})
    assert error.status_code == 418
    assert error.to_problem()["errors"] == [{"loc": "x"}]
    assert "detail" not in error.to_problem()
    assert HTTPError(599).title == "Error"  # not a standard status: a generic title


def test_method_not_allowed_sets_allow() -> None:
    error = MethodNotAllowed("no", allowed=["GET", "HEAD"])
    assert error.allowed == ("GET", "HEAD")
    assert error.headers == {"allow": "GET, HEAD"}
    assert str(error) == "no"
    with pytest.raises(TypeError, match="allowed methods by keyword"):
        MethodNotAllowed(["GET"])  # type: ignore[arg-type]  # the old positional form


# --- one signature for HTTPError and every subclass -----------------------------------------


class Teapot(HTTPError):
    status_code = 418


def test_a_subclass_with_a_status_code_takes_the_detail_first() -> None:
    error = Teapot("I only make tea.", {"x-kind": "teapot"}, extra={"hint": "brew"})
    assert (error.status_code, error.detail, error.headers) == (418, "I only make tea.",
                                                                {"x-kind": "teapot"})
    assert error.to_problem()["hint"] == "brew"
    assert Teapot().status_code == 418
    assert Teapot(detail="short").detail == "short"
    app = App()

    @app.get("/tea")
    async def tea() -> None:
        raise Teapot("Short and stout.")

    response = TestClient(app).get("/tea")
    assert response.status_code == 418
    assert response.json()["detail"] == "Short and stout."


def test_http_error_takes_the_status_positionally_or_by_keyword() -> None:
    assert (HTTPError(418, "x").status_code, HTTPError(418, "x").detail) == (418, "x")
    error = HTTPError(status_code=409, detail="taken", headers={"x": "1"})
    assert (error.status_code, error.detail, error.headers) == (409, "taken", {"x": "1"})
    assert HTTPError("boom").status_code == 500
    assert NotFound(status_code=410).status_code == 410  # a keyword may still override
    with pytest.raises(TypeError, match="status_code twice"):
        HTTPError(418, status_code=418)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="detail twice"):
        NotFound("a", detail="b")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="headers twice"):
        NotFound("a", {}, headers={})  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="by keyword"):
        HTTPError(418, "a", {}, {})  # type: ignore[call-overload]


@pytest.mark.parametrize(("cls", "code", "title"), NAMED)
def test_every_error_takes_retry_after(cls: type[HTTPError], code: int, title: str) -> None:
    error = cls("later", retry_after=30)
    assert (error.status_code, error.retry_after) == (code, 30)
    assert error.headers == {"retry-after": "30"}


def test_retry_after_values() -> None:
    assert TooManyRequests(retry_after=0.2).headers["retry-after"] == "1"  # rounded up
    assert TooManyRequests(retry_after=-5).headers["retry-after"] == "0"
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert ContentTooLarge(retry_after=when).headers["retry-after"] == (
        "Wed, 02 Jan 2030 03:04:05 GMT")
    with pytest.raises(ValueError, match="aware datetime"):
        ServiceUnavailable(retry_after=datetime(2030, 1, 2))
    assert TooManyRequests("x", {"x-a": "1"}, retry_after=2).headers == {"x-a": "1",
                                                                         "retry-after": "2"}


def test_websocket_disconnect_message() -> None:
    assert str(WebSocketDisconnect()) == "WebSocket closed with code 1000"
    assert str(WebSocketDisconnect(1001, "bye")) == "WebSocket closed with code 1001: bye"


def test_status_codes_by_name() -> None:
    assert status.HTTP_404_NOT_FOUND == 404
    assert status.HTTP_201_CREATED == 201
    assert len([n for n in status.__all__ if n.startswith("HTTP_")]) >= 60
    assert set(status.__all__) == {n for n in vars(status) if n.startswith(("HTTP_", "WS_"))}


def test_status_names_are_the_rfc_9110_titles() -> None:
    # one name per status: the constant spells the title the error bodies carry (RFC 9110
    # §15's, on every Python version), so the two can never drift apart again
    for name in status.__all__:
        if not name.startswith("HTTP_"):
            continue
        code = getattr(status, name)
        title = HTTPError(code).title
        spelled = re.sub(r"[^A-Z0-9]+", "_", title.upper().replace("'", "")).strip("_")
        assert name == f"HTTP_{code}_{spelled}", (name, title)
    assert HTTPError(413).title == "Content Too Large"
    assert HTTPError(414).title == "URI Too Long"
    assert HTTPError(416).title == "Range Not Satisfiable"
    assert HTTPError(422).title == "Unprocessable Content"


# --- deprecated names -----------------------------------------------------------------------

DEPRECATED = [
    (joey, "PayloadTooLarge", ContentTooLarge),
    (joey.exceptions, "PayloadTooLarge", ContentTooLarge),
    (joey, "TextResponse", PlainTextResponse),
    (joey.responses, "TextResponse", PlainTextResponse),
    (status, "HTTP_413_REQUEST_ENTITY_TOO_LARGE", 413),
    (status, "HTTP_414_REQUEST_URI_TOO_LONG", 414),
    (status, "HTTP_416_REQUESTED_RANGE_NOT_SATISFIABLE", 416),
    (status, "HTTP_422_UNPROCESSABLE_ENTITY", 422),
]


@pytest.mark.parametrize(("module", "old", "current"), DEPRECATED)
def test_old_names_still_work_and_warn(module: ModuleType, old: str, current: object) -> None:
    with pytest.warns(DeprecationWarning, match=rf"{module.__name__}\.{old} is deprecated: use"):
        assert getattr(module, old) == current
    assert old not in getattr(module, "__all__", ())  # `import *` never brings one back


def test_unknown_names_are_still_attribute_errors() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        joey.exceptions.Nope  # noqa: B018
    with pytest.raises(AttributeError, match="has no attribute 'HTTP_999'"):
        status.HTTP_999  # noqa: B018


def test_raising_an_error_in_a_handler_answers_with_its_status() -> None:
    app = App()

    @app.get("/missing")
    async def missing() -> None:
        raise NotFound("No such thing.")

    @app.get("/teapot")
    def teapot() -> None:
        raise HTTPError(418, "short and stout", headers={"x-kind": "teapot"},
                        extra={"hint": "brew"})

    @app.get("/plain")
    async def plain() -> None:
        raise Unauthorized(headers={"www-authenticate": "Bearer"})

    client = TestClient(app)
    response = client.get("/missing")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {"type": "about:blank", "title": "Not Found", "status": 404,
                               "detail": "No such thing."}
    response = client.get("/teapot")
    assert response.status_code == 418
    assert response.headers["x-kind"] == "teapot"
    assert response.json() == {"type": "about:blank", "title": "I'm a Teapot", "status": 418,
                               "detail": "short and stout", "hint": "brew"}
    response = client.get("/plain")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "detail" not in response.json()


def test_errors_raised_in_middleware_are_answered_too() -> None:
    async def guard(request: object, call_next: object) -> None:
        raise Forbidden("Go away.")

    app = App(middleware=[guard])  # type: ignore[list-item]

    @app.get("/")
    async def index() -> str:
        return "never"  # pragma: no cover

    response = TestClient(app).get("/")
    assert response.status_code == 403
    assert response.json()["detail"] == "Go away."
    # middleware also wraps the not-found answer
    assert TestClient(app).get("/nope").status_code == 403


def test_named_errors_are_siblings_not_bad_requests() -> None:
    for cls, code, _ in NAMED:
        assert issubclass(cls, HTTPError)
        if code != 400:
            assert not issubclass(cls, BadRequest), cls
    app = App()
    seen: list[int] = []

    @app.exception_handler(BadRequest)
    async def only_400s(request: Request, exc: BadRequest) -> Response:
        seen.append(exc.status_code)
        return Response(b"custom 400", status_code=400)

    @app.get("/bad")
    async def bad() -> None:
        raise BadRequest("no")

    @app.get("/gone")
    async def gone() -> None:
        raise Gone("bye")

    with TestClient(app) as client:
        assert client.get("/bad").text == "custom 400"
        assert client.get("/gone").status_code == 410
        assert client.get("/missing").status_code == 404
    assert seen == [400]


def test_service_unavailable_sets_retry_after() -> None:
    error = ServiceUnavailable("Redis is down.", retry_after=7)
    assert error.status_code == 503
    assert error.headers == {"retry-after": "7"}
    assert error.retry_after == 7
    assert error.to_problem()["detail"] == "Redis is down."
    assert ServiceUnavailable().headers == {}


# --- exception handlers that return plain values, and catch-all handlers --------------------


def test_exception_handler_may_return_a_plain_value() -> None:
    app = App()

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> dict[str, str]:
        return {"error": "missing", "detail": exc.detail or ""}

    @app.exception_handler(ServiceUnavailable)
    def unavailable(request: Request, exc: ServiceUnavailable) -> str:
        return "try later"

    @app.exception_handler(KeyError)
    async def key_error(request: Request, exc: KeyError) -> list[str]:
        return ["no such key", str(exc)]

    @app.get("/gone")
    async def gone() -> str:
        raise ServiceUnavailable("down", retry_after=5)

    @app.get("/key")
    async def key() -> str:
        raise KeyError("k")

    client = TestClient(app)
    missing = client.get("/nowhere")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/json"
    assert missing.json() == {"error": "missing", "detail": "Nothing at /nowhere."}
    down = client.get("/gone")
    assert (down.status_code, down.text, down.headers["retry-after"]) == (503, "try later", "5")
    keyed = client.get("/key")
    assert (keyed.status_code, keyed.json()) == (500, ["no such key", "'k'"])


def test_exception_handler_returning_something_unsendable_names_itself(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = App()

    @app.exception_handler(Conflict)
    async def conflict(request: Request, exc: Conflict) -> object:
        return object()

    @app.get("/")
    async def index() -> str:
        raise Conflict("taken")

    with caplog.at_level("ERROR", logger="joey"):
        response = TestClient(app, raise_server_exceptions=False).get("/")
    assert response.status_code == 500
    assert "Exception handler" in caplog.text and "conflict" in caplog.text
    assert "returned a object for Conflict" in caplog.text
    assert "Unhandled TypeError in middleware" not in caplog.text


def test_catch_all_handler_renders_but_the_traceback_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = App()

    @app.exception_handler(Exception)
    async def everything(request: Request, exc: Exception) -> Response:
        return Response(b'{"oops": true}', status_code=500, media_type="application/json")

    @app.get("/boom")
    async def boom() -> str:
        raise ZeroDivisionError("the bug")

    @app.get("/expected")
    async def expected() -> str:
        raise Forbidden("no")

    with caplog.at_level("ERROR", logger="joey"):
        response = TestClient(app, raise_server_exceptions=False).get("/boom")
        forbidden = TestClient(app).get("/expected")
    assert (response.status_code, response.json()) == (500, {"oops": True})
    assert forbidden.status_code == 500  # the catch-all renders HTTP errors too, as asked
    records = [r for r in caplog.records if r.exc_info]
    assert len(records) == 1  # the ZeroDivisionError, not the Forbidden
    record = records[0]
    assert record.exc_info is not None and record.exc_info[0] is ZeroDivisionError
    assert "Unhandled ZeroDivisionError in" in record.getMessage()
    assert "boom" in record.getMessage()
    assert "rendered by exception handler" in record.getMessage()
    assert "the bug" in caplog.text


def test_specific_handler_is_not_logged_as_unhandled(caplog: pytest.LogCaptureFixture) -> None:
    app = App()

    @app.exception_handler(LookupError)
    async def lookup(request: Request, exc: LookupError) -> Response:
        return Response(b"not here", status_code=404)

    @app.get("/")
    async def index() -> str:
        raise KeyError("x")

    with caplog.at_level("ERROR", logger="joey"):
        response = TestClient(app).get("/")
    assert (response.status_code, response.text) == (404, "not here")
    assert caplog.records == []
