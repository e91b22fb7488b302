"""What the routes share: the settings, a database connection per request (a ``yield``
dependency), the calling user, and paging parameters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import aiosqlite
from fastapi import Depends, HTTPException, Query, status
from fastapi.security import OAuth2PasswordBearer

from .config import Settings, get_settings
from .schemas import UserOut
from .security import read_access_token

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="token")


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
    token: Annotated[str, Depends(oauth2_scheme)],
    settings: Annotated[Settings, Depends(get_settings)],
    db: Database,
) -> UserOut:
    username = read_access_token(token, settings)
    row = None
    if username is not None:
        cursor = await db.execute("SELECT id, username FROM users WHERE username = ?",
                                  (username,))
        row = await cursor.fetchone()
    if row is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Could not validate credentials",
                            headers={"WWW-Authenticate": "Bearer"})
    return UserOut(id=row["id"], username=row["username"])


CurrentUser = Annotated[UserOut, Depends(get_current_user)]


class Page:
    """``?offset=0&limit=10``, bounded: ``limit=1000`` is a 422, not a slow query."""

    def __init__(self, offset: Annotated[int, Query(ge=0)] = 0,
                 limit: Annotated[int, Query(ge=1, le=100)] = 10) -> None:
        self.offset = offset
        self.limit = limit
