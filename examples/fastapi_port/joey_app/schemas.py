"""What goes over the wire: ``msgspec.Struct`` s with their constraints in ``Meta`` (pydantic
models work too; Structs need no extra dependency and decode faster)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

Title = Annotated[str, Meta(min_length=1, max_length=100)]


class UserIn(msgspec.Struct):
    username: Annotated[str, Meta(min_length=3, max_length=32, pattern=r"^[a-z0-9_]+$")]
    password: Annotated[str, Meta(min_length=8)]


class UserOut(msgspec.Struct):
    id: int
    username: str


class LoginForm(msgspec.Struct):
    """The OAuth2 password flow's form (FastAPI's ``OAuth2PasswordRequestForm``)."""

    username: str
    password: str
    grant_type: str | None = None
    scope: str = ""


class Token(msgspec.Struct):
    access_token: str
    token_type: str = "bearer"


class ItemIn(msgspec.Struct):
    title: Title
    description: str | None = None


class ItemPatch(msgspec.Struct):
    """Only the fields sent change (``UNSET``: pydantic's ``exclude_unset``)."""

    title: Title | msgspec.UnsetType = msgspec.UNSET
    description: str | msgspec.UnsetType | None = msgspec.UNSET
    done: bool | msgspec.UnsetType = msgspec.UNSET


class ItemOut(msgspec.Struct):
    id: int
    title: str
    description: str | None
    done: bool


class ItemPage(msgspec.Struct):
    items: list[ItemOut]
    total: int
    offset: int
    limit: int


class EventOut(msgspec.Struct):
    item_id: int
    action: str
