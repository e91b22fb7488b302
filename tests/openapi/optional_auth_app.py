"""An app shaped like the ported one Schemathesis found issue #23's OpenAPI items in: optional
authentication (``Credentials | None``), its own ``HTTPError`` handler, a path parameter with
a ``msgspec.Meta`` description. Served by tests/openapi/test_contract.py."""

from __future__ import annotations

from typing import Annotated

import msgspec

from joey import App, HTTPError, Request
from joey.openapi import OpenAPI
from joey.security import BearerCredentials, HTTPBearer, Security

app = App(openapi=OpenAPI(title="Notes", version="1.0"))
token = HTTPBearer(prefix="Token", name="Token")


class Greeting(msgspec.Struct):
    text: str
    signed_in: bool


class Error(msgspec.Struct):
    error: str
    status: int


@app.exception_handler(HTTPError, schema=Error)
async def our_format(request: Request, exc: HTTPError) -> Error:
    return Error(exc.title, exc.status_code)


@app.get("/greeting")
async def greeting(
    credentials: Annotated[BearerCredentials | None, Security(token)],
) -> Greeting:
    """Anyone may ask; a signed-in client is greeted by its token."""
    if credentials is None:
        return Greeting("hello, stranger", False)
    return Greeting(f"hello, {credentials.token}", True)


@app.get("/notes/{slug}")
async def note(
    slug: Annotated[str, msgspec.Meta(description="the note's slug")],
    credentials: Annotated[BearerCredentials | None, Security(token)],
) -> Greeting:
    """One note; anonymous readers too."""
    return Greeting(slug, credentials is not None)
