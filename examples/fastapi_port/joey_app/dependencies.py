"""What the routes share: the settings, a database connection per request (a ``yield``
dependency), the calling user, and paging parameters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import aiosqlite

from joey import Depends, Query, Security
from joey.security.jwt import JWTCredentials

from .config import Settings, get_settings
from .schemas import UserOut
from .security import access_tokens


async def get_db(
    settings: Annotated[Settings, Depends(get_settings)],
) -> AsyncIterator[aiosqlite.Connection]:
    """One connection per request, committed when the handler has returned; what a failed
    request changed is rolled back."""
    async with aiosqlite.connect(settings.database) as db:
        db.row_factory = aiosqlite.Row
        try:
            yield db
            await db.commit()
        except Exception:
            await db.rollback()
            raise


# scope="function": torn down when the handler returns, before the response is sent, so a
# commit that fails is the client's answer, never a 201 for a write that did not happen.
Database = Annotated[aiosqlite.Connection, Depends(get_db, scope="function")]


async def get_current_user(
    token: Annotated[JWTCredentials, Security(access_tokens)],
    db: Database,
) -> UserOut:
    # the token is valid (signature, expiry, subject): its user may still be gone
    cursor = await db.execute("SELECT id, username FROM users WHERE username = ?",
                              (token.subject,))
    row = await cursor.fetchone()
    if row is None:  # a 401 with WWW-Authenticate: Bearer error="invalid_token"
        raise access_tokens.invalid("Could not validate credentials")
    return UserOut(id=row["id"], username=row["username"])


# Security, not Depends: it runs before the body is read, so an anonymous client gets its
# 401 whatever it sent.
CurrentUser = Annotated[UserOut, Security(get_current_user)]


class Page:
    """``?offset=0&limit=10``, bounded: ``limit=1000`` is a 422, not a slow query."""

    def __init__(self, offset: Annotated[int, Query(ge=0)] = 0,
                 limit: Annotated[int, Query(ge=1, le=100)] = 10) -> None:
        self.offset = offset
        self.limit = limit
