"""Constraints on parameters: FastAPI's marker keywords, ``annotated_types`` and pydantic
``Field`` are checked (a 422 naming the parameter) and documented; what Joey cannot apply is
refused at startup with the fix (issue #26 §1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import annotated_types as at
import msgspec
import pytest
from pydantic import AfterValidator, Field

from joey import App, Body, Cookie, Form, Header, Path, Query
from joey.openapi import OpenAPI
from joey.testing import TestClient

from .asgi import close_test_clients  # noqa: F401 - autouse fixture


def _errors(response: Any) -> list[tuple[str, str, str]]:
    assert response.status_code == 422, response.text
    return [(e["loc"], e["name"], e["type"]) for e in response.json()["errors"]]


def test_markers_take_fastapis_constraint_keywords() -> None:
    app = App()

    @app.get("/items/{item_id}")
    async def items(
        item_id: int = Path(ge=1),
        limit: int = Query(10, ge=1, le=100),
        q: str | None = Query(None, min_length=2, max_length=5, pattern="^[a-z]+$"),
        step: Annotated[float, Query(multiple_of=0.5, gt=0, lt=10)] = 1.0,
        token: str | None = Header(None),
        session: Annotated[str, Cookie(min_length=3)] = "anonymous",
    ) -> dict[str, Any]:
        return {"item_id": item_id, "limit": limit, "q": q, "step": step, "token": token,
                "session": session}

    client = TestClient(app)
    # Header(None): optional, None when absent (it was required)
    assert client.get("/items/1").json() == {"item_id": 1, "limit": 10, "q": None,
                                             "step": 1.0, "token": None,
                                             "session": "anonymous"}
    assert client.get("/items/2?limit=100&q=abc&step=2.5",
                      headers={"token": "t"}).json()["token"] == "t"
    assert _errors(client.get("/items/1?limit=0")) == [("query", "limit", "too_small")]
    assert _errors(client.get("/items/1?limit=1000")) == [("query", "limit", "too_large")]
    assert _errors(client.get("/items/0")) == [("path", "item_id", "too_small")]
    assert _errors(client.get("/items/1?q=a")) == [("query", "q", "too_short")]
    assert _errors(client.get("/items/1?q=abcdef")) == [("query", "q", "too_long")]
    assert _errors(client.get("/items/1?q=ABC")) == [("query", "q", "pattern")]
    assert _errors(client.get("/items/1?step=0.3")) == [("query", "step", "multiple_of")]
    assert _errors(client.get("/items/1", headers={"cookie": "session=x"})) == [
        ("cookie", "session", "too_short")]
    # every failure in one 422, each naming its parameter
    assert _errors(client.get("/items/0?limit=0&q=a")) == [
        ("path", "item_id", "too_small"), ("query", "limit", "too_small"),
        ("query", "q", "too_short")]


def test_fastapi_spellings_of_defaults_and_aliases() -> None:
    app = App()

    @app.get("/")
    async def index(
        required: int = Query(...),
        renamed: str = Query("x", alias="other-name"),
        header: str = Header(default="none", alias="x-thing"),
        joeys: Annotated[str, Query("joey-name")] = "j",  # in Annotated: the alias, as before
    ) -> list[Any]:
        return [required, renamed, header, joeys]

    client = TestClient(app)
    assert _errors(client.get("/")) == [("query", "required", "missing")]
    assert client.get("/?required=1").json() == [1, "x", "none", "j"]
    assert client.get("/?required=1&other-name=y&joey-name=k",
                      headers={"x-thing": "h"}).json() == [1, "y", "h", "k"]


def test_body_and_form_markers_take_constraints() -> None:
    app = App()

    @app.post("/embedded")
    async def embedded(count: Annotated[int, Body(embed=True, ge=1)]) -> int:
        return count

    @app.post("/form")
    async def form(name: Annotated[str, Form(min_length=2)]) -> str:
        return name

    client = TestClient(app)
    assert client.post("/embedded", json={"count": 2}).json() == 2
    assert _errors(client.post("/embedded", json={"count": 0})) == [
        ("body", "$.count", "too_small")]
    assert client.post("/form", data={"name": "ann"}).text == "ann"
    assert _errors(client.post("/form", data={"name": "a"})) == [("form", "name", "too_short")]


def _refused(handler: Callable[..., Any], path: str = "/") -> str:
    app = App()
    app.get(path)(handler)
    with pytest.raises(TypeError) as refused:
        app.freeze()
    text = str(refused.value)
    assert "test_params_constraints.py:" in text  # names the handler's file and line
    return text


def test_a_default_inside_annotated_is_refused_at_startup_with_the_fix() -> None:
    async def positional(limit: Annotated[int, Query(10)]) -> int:
        return limit  # pragma: no cover

    async def header_none(token: Annotated[str | None, Header(None)]) -> str | None:
        return token  # pragma: no cover

    async def keyword(limit: Annotated[int, Query(default=10)]) -> int:
        return limit  # pragma: no cover

    text = _refused(positional)
    assert "Query(10) in Annotated" in text
    assert "`limit: Annotated[T, Query()] = 10`" in text
    assert "`limit: T = Query(10)`" in text
    assert "Header(None) in Annotated" in _refused(header_none)
    assert "write the default after `=`" in _refused(keyword)


def test_two_sources_for_one_parameter_are_refused() -> None:
    async def both(limit: Annotated[int, Query()] = Header(None)) -> int:
        return limit  # pragma: no cover

    assert "several sources" in _refused(both)


def test_a_path_marker_must_name_a_path_parameter_and_has_no_default() -> None:
    async def missing(item_id: int = Path()) -> int:
        return item_id  # pragma: no cover

    async def with_default(item_id: int = Path(3)) -> int:
        return item_id  # pragma: no cover

    assert "Path(), but the route's path has no {item_id}" in _refused(missing, "/x/{id}")
    assert "a path parameter is always sent" in _refused(with_default, "/x/{item_id}")


def test_a_constraint_that_does_not_fit_the_type_is_refused_at_startup() -> None:
    async def length_of_int(limit: int = Query(10, min_length=2)) -> int:
        return limit  # pragma: no cover

    text = _refused(length_of_int)
    assert "parameter 'limit': a constraint does not fit its type" in text


# -- annotated_types and pydantic.Field --------------------------------------------------


LIMITS: dict[str, Any] = {
    "pydantic Field": Annotated[int, Field(ge=1, le=100)],
    "annotated_types Ge/Le": Annotated[int, at.Ge(1), at.Le(100)],
    "annotated_types Interval": Annotated[int, at.Interval(ge=1, lt=101)],
    "annotated_types Gt/Lt": Annotated[int, at.Gt(0), at.Lt(101)],
    "Field with a Query marker": Annotated[int, Query(), Field(ge=1, le=100)],
    "optional": Annotated[int | None, Field(ge=1, le=100)],
}


@pytest.mark.parametrize("annotation", list(LIMITS.values()), ids=list(LIMITS))
def test_pydantic_field_and_annotated_types_bounds_are_checked(annotation: Any) -> None:
    app = App()

    async def page(limit=10):  # type: ignore[no-untyped-def]
        return limit

    page.__annotations__ = {"limit": annotation, "return": Any}
    app.get("/")(page)
    client = TestClient(app)
    assert client.get("/?limit=50").json() == 50
    assert _errors(client.get("/?limit=1000")) == [("query", "limit", "too_large")]
    assert _errors(client.get("/?limit=0")) == [("query", "limit", "too_small")]


def test_lengths_patterns_and_nested_constraints_from_annotated_types_and_pydantic() -> None:
    app = App()

    @app.get("/{code}")
    async def search(
        code: Annotated[str, at.MaxLen(3)],
        q: Annotated[str, Field(min_length=2, pattern="^[a-z]+$")] = "ab",
        tags: Annotated[list[str], at.Len(0, 2)] = [],  # noqa: B006 - never mutated
        ids: Annotated[list[Annotated[int, at.Ge(1)]], Query()] = [],  # noqa: B006
        x_size: Annotated[int, Header(), at.MultipleOf(2)] = 2,
    ) -> list[Any]:
        return [code, q, tags, ids, x_size]

    client = TestClient(app)
    assert client.get("/abc?ids=1&ids=2").json() == ["abc", "ab", [], [1, 2], 2]
    assert _errors(client.get("/abcd")) == [("path", "code", "too_long")]
    assert _errors(client.get("/a?q=a")) == [("query", "q", "too_short")]
    assert _errors(client.get("/a?q=AB")) == [("query", "q", "pattern")]
    assert _errors(client.get("/a?tags=a&tags=b&tags=c")) == [("query", "tags", "too_long")]
    assert _errors(client.get("/a?ids=1&ids=0")) == [("query", "ids", "too_small")]
    assert _errors(client.get("/a", headers={"x-size": "3"})) == [
        ("header", "x-size", "multiple_of")]


UNAPPLICABLE: dict[str, tuple[Any, str]] = {
    "Predicate": (Annotated[int, at.Predicate(lambda v: v > 0)], "Predicate("),
    "a pydantic validator": (Annotated[int, AfterValidator(lambda v: v)], "AfterValidator("),
    "Field(default_factory=)": (Annotated[int, Field(default_factory=lambda: 1)],
                                "Field(default_factory=...) is not a constraint"),
    "Field(default)": (Annotated[int, Field(3)], "a default goes after `=`"),
    "Field(alias=)": (Annotated[int, Field(alias="x")], "Query/Header/Cookie(alias=...)"),
    "Field(strict=)": (Annotated[int, Field(strict=True)], "Strict("),
    "a named time zone": (Annotated[str, at.Timezone("UTC")], "not which one"),
    "Not": (Annotated[int, at.Not(lambda v: v > 0)], "Not("),
}


@pytest.mark.parametrize("case", list(UNAPPLICABLE), ids=list(UNAPPLICABLE))
def test_a_constraint_joey_cannot_apply_is_refused_at_startup(case: str) -> None:
    annotation, detail = UNAPPLICABLE[case]

    async def page(limit=1):  # type: ignore[no-untyped-def]
        return limit  # pragma: no cover

    page.__annotations__ = {"limit": annotation, "return": Any}
    text = _refused(page)
    assert "parameter 'limit'" in text
    assert detail in text
    assert "Query/Header/Cookie/Path/Form(ge=..." in text  # the fix


def test_a_pydantic_field_as_the_default_is_refused_with_the_fix() -> None:
    async def page(limit: int = Field(10, ge=1)) -> int:
        return limit  # pragma: no cover

    text = _refused(page)
    assert "has a pydantic Field as its default" in text
    assert "`limit: T = Query(value, ge=...)`" in text


def test_what_is_not_a_constraint_is_left_alone() -> None:
    app = App()

    @app.get("/")
    async def page(limit: Annotated[int, "a note", at.Unit("items"), at.doc("how many")] = 1,
                   ) -> int:
        return limit

    assert TestClient(app).get("/?limit=3").json() == 3


# -- the API document reads the same constraints -------------------------------------------


def test_constraints_and_docs_reach_the_api_document() -> None:
    app = App(openapi=OpenAPI(title="t"))

    @app.get("/items/{item_id}")
    async def items(
        item_id: int = Path(ge=1, description="the item"),
        limit: int = Query(10, ge=1, le=100, description="page size", examples=[20]),
        old: str | None = Query(None, deprecated=True),
        internal: str | None = Header(None, include_in_schema=False),
        size: Annotated[int, Field(gt=0, description="from pydantic")] = 1,
        ratio: Annotated[float, at.Interval(ge=0, le=1)] = 0.5,
    ) -> None:
        return None

    document = TestClient(app).get("/openapi.json").json()
    parameters = {p["name"]: p for p in document["paths"]["/items/{item_id}"]["get"]
                  ["parameters"]}
    assert "internal" not in parameters
    assert parameters["item_id"]["description"] == "the item"
    assert parameters["item_id"]["schema"]["minimum"] == 1
    assert parameters["limit"]["description"] == "page size"
    assert parameters["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 100,
                                             "default": 10, "examples": [20]}
    assert parameters["old"]["deprecated"] is True
    assert parameters["size"]["description"] == "from pydantic"
    assert parameters["size"]["schema"]["exclusiveMinimum"] == 0
    assert parameters["ratio"]["schema"] == {"type": "number", "minimum": 0, "maximum": 1,
                                             "default": 0.5}


def test_marker_repr_shows_what_was_written() -> None:
    assert repr(Query(10, ge=1)) == "Query(10, msgspec.Meta(ge=1))"
    assert repr(Header(alias="x-token")) == "Header(alias='x-token')"
    assert repr(Query()) == "Query()"
    with pytest.raises(TypeError, match="give the default once"):
        Query(1, default=2)
    meta = Query(include_in_schema=False, deprecated=True).meta
    assert meta == msgspec.Meta(extra={"deprecated": True, "include_in_schema": False})
