"""What the routes share: the settings, a database connection per request (a ``yield``
dependency), the calling user, and paging parameters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import aiosqlite
from msgspec import Meta

from joey import Depends
from joey.security import BearerCredentials, OAuth2PasswordBearer, Security

from .config import Settings, get_settings
from .schemas import UserOut
from .security import read_access_token

oauth2_scheme = OAuth2PasswordBearer("/token")


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
    credentials: Annotated[BearerCredentials, Security(oauth2_scheme)],
    settings: Annotated[Settings, Depends(get_settings)],
    db: Database,
) -> UserOut:
    username = read_access_token(credentials.token, settings)
    row = None
    if username is not None:
        cursor = await db.execute("SELECT id, username FROM users WHERE username = ?",
                                  (username,))
        row = await cursor.fetchone()
    if row is None:  # a 401 with WWW-Authenticate: Bearer error="invalid_token"
        raise oauth2_scheme.invalid("Could not validate credentials")
    return UserOut(id=row["id"], username=row["username"])


# Security, not Depends: it runs before the body is read, so an anonymous client gets its
# 401 whatever it sent.
CurrentUser = Annotated[UserOut, Security(get_current_user)]


class Page:
    """``?offset=0&limit=10``, bounded: ``limit=1000`` is a 422, not a slow query."""

    def __init__(self, offset: Annotated[int, Meta(ge=0)] = 0,
                 limit: Annotated[int, Meta(ge=1, le=100)] = 10) -> None:
        self.offset = offset
        self.limit = limit


Paging = Annotated[Page, Depends(Page)]
