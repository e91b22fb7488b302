"""A value that already is what the return annotation declares is sent as JSON at once
(``joey.params.returns.sent_as_json``): the same answers as the general path, status codes
included, and everything else still goes through the conversion and ``to_response``."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import msgspec
import pydantic
import pytest

from joey import App, JSONResponse, Response
from joey.params.returns import sent_as_json
from joey.testing import TestClient


class World(msgspec.Struct):
    id: int
    randomNumber: int


class Special(World):
    note: str = ""


@dataclasses.dataclass
class Point:
    x: int
    y: int


@dataclasses.dataclass
class Point3(Point):
    z: int


@dataclasses.dataclass(init=False)
class Slug(str):
    """A dataclass that is a str: sent as text, as before the shortcut."""


class User(pydantic.BaseModel):
    name: str


@pytest.mark.parametrize(("annotation", "value", "passes"), [
    (World, World(1, 2), True),
    (World, Special(1, 2, "sub"), True),  # an instance of the declared class
    (World, {"id": 1, "randomNumber": 2}, False),  # converted first
    (Point, Point(1, 2), True),
    (Point, Point3(1, 2, 3), False),  # a dataclass's subclass: the general path decides
    (list[World], [World(1, 2), World(3, 4)], True),
    (list[World], [World(1, 2), {"id": 3, "randomNumber": 4}], False),
    (list[World], (World(1, 2),), False),
    (tuple[World, ...], (World(1, 2),), True),
    (dict[str, World], {"a": World(1, 2)}, True),
    (dict[str, World], {1: World(1, 2)}, False),
    (World | JSONResponse, World(1, 2), True),
])
def test_what_passes_as_declared(annotation: Any, value: Any, passes: bool) -> None:
    test = sent_as_json(annotation)
    assert test is not None
    assert test(value) is passes


@pytest.mark.parametrize("annotation", [
    World | None,  # None is a 204, not JSON
    Annotated[list[World], msgspec.Meta(max_length=1)],  # constraints: msgspec checks them
    set[World],  # a set is not sent as JSON (to_response refuses it)
    User,  # pydantic: its own conversion
    Slug,  # a str: text/plain
    int, str, dict[str, int],  # nothing structured: the value decides
])
def test_no_shortcut_where_a_declared_value_may_be_sent_otherwise(annotation: Any) -> None:
    assert sent_as_json(annotation) is None


def test_declared_values_are_sent_as_the_general_path_sends_them() -> None:
    app = App()

    @app.get("/one")
    async def one() -> World:
        return World(1, 2)

    @app.post("/made", status_code=201)
    async def made() -> World:
        return World(3, 4)

    @app.get("/many")
    async def many() -> list[World]:
        return [World(1, 2), World(3, 4)]

    @app.get("/mixed")
    async def mixed() -> list[World]:
        return [World(1, 2), {"id": 3, "randomNumber": 4}]  # type: ignore[list-item]

    @app.get("/point")
    def point() -> Point:
        return Point(5, 6)

    @app.get("/maybe")
    async def maybe() -> World | None:
        return None

    @app.get("/set")
    async def as_set() -> set[int | World]:
        return {1}

    @app.get("/response")
    async def response() -> World | JSONResponse:
        return JSONResponse({"replaced": True}, status_code=202)

    class HtmlPoint(Response, Point):  # a response that also is a Point
        pass

    @app.get("/html", status_code=201)
    async def html() -> Point:
        answer = HtmlPoint(b"<p>1</p>", status_code=202, media_type="text/html",
                           headers={"x-a": "1"})
        answer.x, answer.y = 1, 2
        return answer

    @app.get("/slug")
    async def slug() -> Slug:
        return Slug("hello")

    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/html")  # sent as the response it is
        assert answer.status_code == 202 and answer.text == "<p>1</p>"
        assert answer.headers["x-a"] == "1"
        assert answer.headers["content-type"].startswith("text/html")
        answer = client.get("/slug")
        assert answer.text == "hello" and answer.headers["content-type"].startswith("text/plain")
        answer = client.get("/one")
        assert answer.status_code == 200 and answer.json() == {"id": 1, "randomNumber": 2}
        assert answer.headers["content-type"] == "application/json"
        answer = client.post("/made")
        assert answer.status_code == 201 and answer.json() == {"id": 3, "randomNumber": 4}
        assert client.get("/many").json() == [{"id": 1, "randomNumber": 2},
                                              {"id": 3, "randomNumber": 4}]
        assert client.get("/mixed").json() == [{"id": 1, "randomNumber": 2},
                                               {"id": 3, "randomNumber": 4}]
        assert client.get("/point").json() == {"x": 5, "y": 6}
        assert client.get("/maybe").status_code == 204
        assert client.get("/set").status_code == 500  # as before: a set is no response
        answer = client.get("/response")
        assert answer.status_code == 202 and answer.json() == {"replaced": True}
