"""Validation errors a client can act on: located at the field, typed, every one reported."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, TypedDict

import msgspec
import pydantic
from msgspec import Meta

from joey import App, Form, JSONResponse, Request, Response
from joey.params.issues import RequestValidationError, ValidationIssue, classify, json_path_parts
from joey.testing import TestClient

from .asgi import close_test_clients  # noqa: F401 - autouse fixture


class Credentials(msgspec.Struct, forbid_unknown_fields=True):
    email: str
    password: Annotated[str, Meta(min_length=8)]


class Signup(msgspec.Struct):
    user: Credentials
    tags: list[str] = []
    scores: dict[str, int] = {}


@dataclasses.dataclass
class Point:
    x: int
    y: int = 0


class Movie(TypedDict):
    title: str
    year: int


class Person(pydantic.BaseModel):
    name: str
    age: int = pydantic.Field(ge=0)


class Profile(msgspec.Struct):
    name: str
    age: int


def build() -> App:
    app = App()

    @app.post("/users")
    async def signup(body: Signup) -> str:
        return body.user.email

    @app.post("/points")
    async def points(body: list[Point]) -> int:
        return len(body)

    @app.post("/movies")
    async def movies(body: Movie) -> str:
        return body["title"]

    @app.post("/people")
    async def people(body: Person) -> str:
        return body.name

    @app.post("/profile")
    async def profile(form: Annotated[Profile, Form()]) -> str:
        return form.name

    @app.get("/search")
    async def search(limit: Annotated[int, Meta(ge=1, le=100)] = 10,
                     code: Annotated[str, Meta(pattern="^[a-z]+$")] = "a") -> int:
        return limit

    return app


def entry(problem: dict[str, Any], name: str) -> dict[str, Any]:
    found = [e for e in problem["errors"] if e["name"] == name]
    assert len(found) == 1, problem["errors"]
    return found[0]


def test_a_missing_field_is_named_and_located_at_the_field() -> None:
    with TestClient(build()) as client:
        response = client.post("/users", json={"user": {"password": "long enough"}})
    assert response.status_code == 422
    assert response.json()["errors"] == [{
        "loc": "body", "name": "$.user.email", "message": "Object missing required field `email`",
        "type": "missing", "location": ["body", "user", "email"],
    }]


def test_a_json_body_reports_every_issue_not_only_the_first() -> None:
    with TestClient(build()) as client:
        response = client.post("/users", json={
            "user": {"email": 3, "password": "short", "admin": True},
            "tags": ["a", 2, "c", None], "scores": {"math": "A"},
        })
    assert response.status_code == 422
    problem = response.json()
    assert problem["detail"] == "6 parameters failed validation."
    assert [(e["location"], e["type"]) for e in problem["errors"]] == [
        (["body", "user", "email"], "type"),
        (["body", "user", "password"], "too_short"),
        (["body", "user", "admin"], "extra"),
        (["body", "tags", 1], "type"),
        (["body", "tags", 3], "type"),
        (["body", "scores", "math"], "type"),
    ]
    assert entry(problem, "$.user.password")["constraint"] == {"min_length": 8}
    assert entry(problem, "$.tags[1]")["message"] == "Expected `str`, got `int`"


def test_dataclass_typeddict_and_list_bodies_report_every_issue() -> None:
    with TestClient(build()) as client:
        points = client.post("/points", json=[{"x": 1}, {"y": "2"}, {"x": "a", "y": 1}])
        movies = client.post("/movies", json={"year": "1999"})
        assert client.post("/points", json=[{"x": 1}]).text == "1"
    assert [(e["location"], e["type"]) for e in points.json()["errors"]] == [
        (["body", 1, "x"], "missing"), (["body", 1, "y"], "type"), (["body", 2, "x"], "type")]
    assert [(e["location"], e["type"]) for e in movies.json()["errors"]] == [
        (["body", "title"], "missing"), (["body", "year"], "type")]


def test_a_value_that_is_wrong_as_a_whole_is_located_at_itself() -> None:
    with TestClient(build()) as client:
        not_a_list = client.post("/points", json={"x": 1})
        not_an_object = client.post("/users", json={"user": "ann"})
    assert [(e["location"], e["type"]) for e in not_a_list.json()["errors"]] == [
        (["body"], "type")]
    assert [(e["location"], e["type"]) for e in not_an_object.json()["errors"]] == [
        (["body", "user"], "type")]


def test_query_constraints_are_typed_with_the_bound() -> None:
    with TestClient(build()) as client:
        response = client.get("/search?limit=0&code=ABC")
        too_large = client.get("/search?limit=101")
    problem = response.json()
    assert entry(problem, "limit") == {
        "loc": "query", "name": "limit", "message": "Expected `int` >= 1",
        "type": "too_small", "location": ["query", "limit"], "constraint": {"ge": 1}}
    assert entry(problem, "code")["type"] == "pattern"
    assert entry(problem, "code")["constraint"] == {"pattern": "^[a-z]+$"}
    assert entry(too_large.json(), "limit")["constraint"] == {"le": 100}


def test_forms_and_pydantic_models_are_typed_too() -> None:
    with TestClient(build()) as client:
        form = client.post("/profile", data={"age": "old"})
        person = client.post("/people", json={"age": -1})
    assert [(e["location"], e["type"]) for e in form.json()["errors"]] == [
        (["form", "name"], "missing"), (["form", "age"], "type")]
    assert [(e["location"], e["type"], e.get("constraint")) for e in person.json()["errors"]] == [
        (["body", "name"], "missing", None), (["body", "age"], "too_small", {"ge": 0})]


def test_an_app_reshapes_errors_from_typed_issues() -> None:
    app = build()

    @app.exception_handler(RequestValidationError)
    async def per_field(request: Request, exc: RequestValidationError) -> Response:
        assert all(isinstance(issue, ValidationIssue) for issue in exc.issues)
        return JSONResponse({
            ".".join(str(part) for part in issue.location[1:]): issue.type
            for issue in exc.issues}, status_code=422)

    with TestClient(app) as client:
        response = client.post("/users", json={"user": {"password": "x" * 8}, "tags": [1]})
    assert response.json() == {"user.email": "missing", "tags.0": "type"}


def test_invalid_json_after_the_first_problem_is_a_400() -> None:
    with TestClient(build()) as client:
        response = client.post("/users", content=b'{"user": 3, "tags": [',
                               headers={"content-type": "application/json"})
    assert response.status_code == 400


def test_messages_classify() -> None:
    assert classify("Expected `int` < 3") == ("too_large", {"lt": 3})
    assert classify("Expected `int` > 3") == ("too_small", {"gt": 3})
    assert classify("Expected `float` >= 0.5") == ("too_small", {"ge": 0.5})
    assert classify("Expected `str` of length <= 2") == ("too_long", {"max_length": 2})
    assert classify("Expected `int` that's a multiple of 3") == ("multiple_of",
                                                                 {"multiple_of": 3})
    assert classify("Invalid enum value 'x'") == ("enum", None)
    assert classify("Expected `array` of length 2, got 1") == ("type", None)
    assert classify("Invalid RFC3339 encoded datetime") == ("invalid", None)
    assert json_path_parts("$.a[0].b[...]") == ["a", 0, "b", "..."]
    issue = ValidationIssue("header", "", "Field required")
    assert issue.location == ("header",)
    assert repr(issue) == "ValidationIssue(['header'], 'missing', 'Field required')"
