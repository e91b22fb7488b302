"""What goes over the wire (pydantic models)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class UserIn(BaseModel):
    username: str = Field(min_length=3, max_length=32, pattern=r"^[a-z0-9_]+$")
    password: str = Field(min_length=8)


class UserOut(BaseModel):
    id: int
    username: str


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"


class ItemIn(BaseModel):
    title: str = Field(min_length=1, max_length=100)
    description: str | None = None


class ItemPatch(BaseModel):
    title: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = None
    done: bool | None = None


class ItemOut(BaseModel):
    id: int
    title: str
    description: str | None
    done: bool


class ItemPage(BaseModel):
    items: list[ItemOut]
    total: int
    offset: int
    limit: int


class EventOut(BaseModel):
    item_id: int
    action: str
