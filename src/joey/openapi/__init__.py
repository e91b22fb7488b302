"""OpenAPI 3.1: the app's API document, made from the route model, and its docs pages.

``App(openapi=OpenAPI(...))`` serves the document at ``/openapi.json`` and Swagger UI, ReDoc
and Scalar at ``/docs``, ``/redoc`` and ``/scalar``. The document is read from ``app.routes``
only (:mod:`joey.routeinfo`): the same plans that validate requests describe them, with
every response a route can produce (see :mod:`joey.openapi.document`).
``joey openapi module:app`` writes it to a file.

Example::

    from joey import App
    from joey.openapi import OpenAPI

    app = App(openapi=OpenAPI(title="Books", version="1.0.0"))

    @app.get("/books/{book_id:int}")
    async def get_book(book_id: int) -> dict[str, int]:
        return {"id": book_id}

    assert app.openapi is not None
    document = app.openapi.document(app)
    assert "/books/{book_id}" in document["paths"]
"""

from joey.openapi.document import build_document
from joey.openapi.errors import ErrorRendering
from joey.openapi.pages import Assets
from joey.openapi.routes import OpenAPI

__all__ = ["Assets", "ErrorRendering", "OpenAPI", "build_document"]
