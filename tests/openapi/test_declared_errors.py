"""What the API document says of errors and inputs a route declares beyond its handler's
signature (issue 26 §4): a rate limit's 429 headers, errors a dependency declares, enum
query values, a router's ``raises`` and ``responses``, a request body's description, and the
body an app's own exception handler answers with. Every document is valid OpenAPI, and every
response it promises is one the app sends."""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal

import msgspec
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from joey import (
    App,
    Conflict,
    Depends,
    Form,
    JSONResponse,
    NotFound,
    Request,
    Router,
)
from joey.exceptions import Forbidden
from joey.openapi import OpenAPI
from joey.ratelimit import RateLimit
from joey.security import Security
from joey.testing import TestClient

from ..asgi import close_test_clients  # noqa: F401 - autouse fixture


def document(app: App) -> dict[str, Any]:
    doc = OpenAPI().document(app)
    validate(doc)
    return doc


def responses(doc: dict[str, Any], path: str, method: str = "get") -> dict[str, Any]:
    result: dict[str, Any] = doc["paths"][path][method]["responses"]
    return result


def schema_validates(doc: dict[str, Any], schema: dict[str, Any], value: Any) -> None:
    Draft202012Validator({**schema, "components": doc.get("components", {})}).validate(value)


def test_a_rate_limits_429_documents_every_header_it_sends() -> None:
    app = App()
    limit = RateLimit(1, 60, name="search")

    @app.get("/search", dependencies=[Security(limit)])
    async def search() -> str:
        return "found"

    documented = responses(document(app), "/search")["429"]
    assert set(documented["headers"]) == {"Retry-After", "RateLimit", "RateLimit-Policy"}
    with TestClient(app) as client:
        assert client.get("/search").status_code == 200
        refused = client.get("/search")
    assert refused.status_code == 429
    for name in documented["headers"]:
        assert name.lower() in refused.headers, name


class Book(msgspec.Struct):
    title: str


BOOKS = {1: Book("Dune")}


def get_book(book_id: int) -> Book:
    if book_id not in BOOKS:
        raise NotFound(f"No book {book_id}.")
    return BOOKS[book_id]


def not_locked(request: Request) -> None:
    if request.headers.get("x-locked"):
        raise Conflict("The shelf is locked.")


def staff(request: Request) -> None:
    if request.headers.get("x-staff") != "yes":
        raise Forbidden("Staff only.")


def test_errors_a_dependency_declares_are_documented_on_every_route_using_it() -> None:
    # declared once, used by every route that reads a book
    BookDep = Annotated[Book, Depends(get_book, raises=[NotFound])]
    app = App()

    @app.get("/books/{book_id:int}")
    async def read(book: BookDep) -> Book:
        return book

    @app.put("/books/{book_id:int}/title",
             dependencies=[Depends(not_locked, raises=[Conflict])])
    async def rename(book: BookDep, title: str) -> Book:
        return Book(title)

    @app.delete("/books/{book_id:int}", status_code=204)
    async def delete(book: BookDep,
                     _: Annotated[None, Security(staff, raises=[Forbidden])]) -> None:
        return None

    def count() -> int:
        return len(BOOKS)

    @app.get("/count")
    async def how_many(n: Annotated[int, Depends(count)]) -> int:
        return n

    doc = document(app)
    assert "404" in responses(doc, "/books/{book_id}")
    assert {"404", "409"} <= set(responses(doc, "/books/{book_id}/title", "put"))
    assert {"403", "404"} <= set(responses(doc, "/books/{book_id}", "delete"))
    assert set(responses(doc, "/count")) == {"200"}
    routes = {(r.methods, r.path): r for r in app.routes}
    assert NotFound in routes[(("GET",), "/books/{book_id:int}")].errors
    with TestClient(app) as client:  # what is documented is what is sent
        missing = client.get("/books/9")
        assert missing.status_code == 404
        schema_validates(doc, responses(doc, "/books/{book_id}")["404"]["content"][
            "application/problem+json"]["schema"], missing.json())
        assert client.put("/books/1/title?title=x", headers={"x-locked": "1"}
                          ).status_code == 409
        assert client.delete("/books/1").status_code == 403


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Size(enum.IntEnum):
    S = 1
    M = 2


def test_enum_and_literal_query_values_have_their_type() -> None:
    app = App()

    @app.get("/shirts")
    async def shirts(color: Color, size: Size = Size.M,
                     fit: Literal["slim", "loose"] = "slim",
                     colors: list[Color] | None = None) -> str:
        return f"{color.value} {size} {fit}"

    doc = document(app)
    parameters = {p["name"]: p["schema"] for p in doc["paths"]["/shirts"]["get"]["parameters"]}
    components = doc["components"]["schemas"]
    assert components["Color"] == {"title": "Color", "enum": ["blue", "red"], "type": "string"}
    assert components["Size"]["type"] == "integer"
    assert parameters["fit"] == {"enum": ["loose", "slim"], "type": "string", "default": "slim"}
    assert parameters["colors"]["items"] == {"$ref": "#/components/schemas/Color"}


def test_a_router_declares_errors_and_responses_for_every_route_in_it() -> None:
    app = App()
    teapot = {"description": "I'm a teapot", "content": {"text/plain": {
        "schema": {"type": "string"}}}}
    books = Router(prefix="/books", raises=[NotFound], responses={418: teapot,
                                                                   503: {"description": "Down"}})
    admin = Router(prefix="/admin", raises=[Forbidden])

    @books.get("/{book_id:int}")
    async def read(book_id: int) -> Book:
        return get_book(book_id)

    @books.post("/", raises=[Conflict], responses={503: {"description": "Shelf closed"}})
    async def add(book: Book) -> Book:
        return book

    @admin.delete("/{book_id:int}", status_code=204)
    async def remove(book_id: int) -> None:
        raise Forbidden("Staff only.")

    books.include_router(admin)
    app.include_router(books)

    @app.get("/elsewhere")
    async def elsewhere() -> str:
        return ""

    doc = document(app)
    read_responses = responses(doc, "/books/{book_id}")
    assert {"404", "418", "503"} <= set(read_responses)
    assert read_responses["418"] == teapot
    add_responses = responses(doc, "/books", "post")
    assert {"404", "409", "418"} <= set(add_responses)
    assert add_responses["503"] == {"description": "Shelf closed"}  # the route's own wins
    remove_responses = responses(doc, "/books/admin/{book_id}", "delete")
    assert {"403", "404", "418"} <= set(remove_responses)  # an included router's, and its own
    assert set(responses(doc, "/elsewhere")) == {"200"}
    with TestClient(app) as client:
        assert client.get("/books/9").status_code == 404
        assert client.delete("/books/admin/1").status_code == 403


def test_a_request_body_description() -> None:
    app = App()

    @app.post("/books", status_code=201)
    async def add(book: Annotated[Book, msgspec.Meta(description="The book to shelve.")],
                  ) -> Book:
        return book

    @app.post("/login")
    async def login(
        form: Annotated[dict[str, str], Form(), msgspec.Meta(description="Name and password.")],
    ) -> str:
        return ""

    doc = document(app)
    body = doc["paths"]["/books"]["post"]["requestBody"]
    assert body["description"] == "The book to shelve."
    assert body["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Book"}
    assert doc["paths"]["/login"]["post"]["requestBody"]["description"] == "Name and password."
    with TestClient(app) as client:  # described, still validated as a Book
        assert client.post("/books", json={"title": "Dune"}).status_code == 201
        assert client.post("/books", json={"title": 1}).status_code == 422


class ErrorBody(msgspec.Struct):
    error: str
    status: int


async def not_found(request: Request, exc: NotFound) -> ErrorBody:
    return ErrorBody(str(exc.detail), 404)


async def conflict(request: Request, exc: Conflict) -> JSONResponse:
    return JSONResponse({"error": str(exc.detail), "status": 409}, status_code=409)


def test_the_apps_exception_handlers_document_the_body_they_answer_with() -> None:
    app = App(exception_handlers={NotFound: not_found, Conflict: conflict},
              exception_schemas={Conflict: ErrorBody})

    @app.get("/books/{book_id:int}", raises=[Conflict])
    async def read(book_id: int) -> Book:
        if book_id == 0:
            raise Conflict("Book 0 is being written.")
        return get_book(book_id)

    doc = document(app)
    documented = responses(doc, "/books/{book_id}")
    ref = {"$ref": "#/components/schemas/ErrorBody"}
    assert documented["404"]["content"] == {"application/json": {"schema": ref}}
    assert documented["409"]["content"] == {"application/json": {"schema": ref}}
    with TestClient(app) as client:
        for path, status in (("/books/9", 404), ("/books/0", 409)):
            answer = client.get(path)
            assert answer.status_code == status
            schema_validates(doc, ref, answer.json())
    with pytest.raises(ValueError, match=r"exception_schemas\[KeyError\]: there is no handler"):
        App(exception_schemas={KeyError: ErrorBody})
