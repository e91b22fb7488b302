"""A JSON body's numbers as JSON Schema reads them: ``1.0`` is the integer 1.

The API document says ``"type": "integer"`` for an ``int`` field, and JSON Schema counts a
number with a zero fraction as an integer, so clients (and Schemathesis) may send ``138.0``.
Joey accepts it for ``int`` (on the failure path only: valid bodies decode as before) and
still refuses a real fraction.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from joey import App
from joey.testing import TestClient

from ..asgi import close_test_clients  # noqa: F401 - autouse fixture


class Book(msgspec.Struct):
    title: str
    year: Annotated[int, msgspec.Meta(ge=0)] | None = None
    price: float = 0.0
    tags: list[int] = []


def make_app() -> App:
    app = App()

    @app.post("/books")
    async def add(book: Book) -> Book:
        return book

    return app


def test_an_integral_float_is_an_integer() -> None:
    client = TestClient(make_app())
    response = client.post("/books", content=b'{"title": "Dune", "year": 1965.0, "price": 2.0,'
                                             b' "tags": [1.0, 2]}',
                           headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json() == {"title": "Dune", "year": 1965, "price": 2.0, "tags": [1, 2]}


def test_a_fraction_is_still_refused_and_constraints_still_hold() -> None:
    client = TestClient(make_app())
    for body, name in ((b'{"title": "Dune", "year": 1965.5}', "$.year"),
                       (b'{"title": "Dune", "year": -1.0}', "$.year"),
                       (b'{"title": "Dune", "tags": [1.0, 2.5]}', "$.tags[1]")):
        response = client.post("/books", content=body,
                               headers={"content-type": "application/json"})
        assert response.status_code == 422, body
        assert [e["name"] for e in response.json()["errors"]] == [name], response.json()
