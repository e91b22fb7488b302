"""Sign-up, the OAuth2 password login that issues a JWT, and who am I."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from typing import Annotated

from joey import BadRequest, Conflict, Depends, Form, Router, status

from ..config import Settings, get_settings
from ..dependencies import CurrentUser, Database
from ..schemas import LoginForm, Token, UserIn, UserOut
from ..security import access_tokens, hash_password, verify_password

router = Router(tags=["users"])


@router.post("/users", status_code=status.HTTP_201_CREATED, raises=[Conflict])
async def sign_up(user: UserIn, db: Database) -> UserOut:
    try:
        cursor = await db.execute(
            "INSERT INTO users (username, password_hash) VALUES (?, ?)",
            (user.username, hash_password(user.password)))
    except sqlite3.IntegrityError:
        raise Conflict(f"The username {user.username!r} is taken") from None
    assert cursor.lastrowid is not None
    return UserOut(id=cursor.lastrowid, username=user.username)


@router.post("/token", raises=[BadRequest])
async def log_in(
    form: Annotated[LoginForm, Form()],
    db: Database,
    settings: Annotated[Settings, Depends(get_settings)],
) -> Token:
    cursor = await db.execute("SELECT password_hash FROM users WHERE username = ?",
                              (form.username,))
    row = await cursor.fetchone()
    if row is None or not verify_password(form.password, row["password_hash"]):
        raise BadRequest("Incorrect username or password")
    token = access_tokens.issue({"sub": form.username}, key=settings.secret_key,
                                expires_in=timedelta(minutes=settings.access_token_minutes))
    return Token(access_token=token)


@router.get("/users/me")
async def read_me(user: CurrentUser) -> UserOut:
    return user
