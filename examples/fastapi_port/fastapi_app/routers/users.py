"""Sign-up, the OAuth2 password login that issues a JWT, and who am I."""

from __future__ import annotations

import sqlite3
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.security import OAuth2PasswordRequestForm

from ..config import Settings, get_settings
from ..dependencies import CurrentUser, Database
from ..schemas import Token, UserIn, UserOut
from ..security import create_access_token, hash_password, verify_password

router = APIRouter(tags=["users"])


@router.post("/users", status_code=status.HTTP_201_CREATED, response_model=UserOut)
async def sign_up(user: UserIn, db: Database) -> UserOut:
    try:
        cursor = await db.execute(
            "INSERT INTO users (username, password_hash) VALUES (?, ?)",
            (user.username, hash_password(user.password)))
    except sqlite3.IntegrityError:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"The username {user.username!r} is taken") from None
    assert cursor.lastrowid is not None
    return UserOut(id=cursor.lastrowid, username=user.username)


@router.post("/token", response_model=Token)
async def log_in(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    db: Database,
    settings: Annotated[Settings, Depends(get_settings)],
) -> Token:
    cursor = await db.execute("SELECT password_hash FROM users WHERE username = ?",
                              (form.username,))
    row = await cursor.fetchone()
    if row is None or not verify_password(form.password, row["password_hash"]):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "Incorrect username or password")
    return Token(access_token=create_access_token(form.username, settings))


@router.get("/users/me", response_model=UserOut)
async def read_me(user: CurrentUser) -> UserOut:
    return user
