"""Who is calling: bearer tokens, read by :class:`joey.security.HTTPBearer`.

``POST /users`` creates a user and returns a random token, once; the database keeps only its
SHA-256, so the token is looked up by hash (one indexed query). Routes take
``Annotated[User, Security(current_user)]``: it runs in the security phase, before the body
is read, so an anonymous client gets its 401 (``WWW-Authenticate: Bearer``, RFC 6750) before
any 422 about what it sent. A route open to anonymous clients too takes
``Security(optional_user)`` (None when no token is sent).
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Annotated

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from examples.notes.database import get_session
from examples.notes.models import User
from examples.notes.schemas import SignupIn, SignupOut, UserOut
from joey import Conflict, Depends, Router
from joey.security import BearerCredentials, HTTPBearer, Security

bearer = HTTPBearer(realm="notes")

router = Router(tags=["users"])


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def find_user(session: AsyncSession, token: str) -> User | None:
    """The user whose token this is, or None."""
    found = await session.scalars(select(User).where(User.token_hash == hash_token(token)))
    return found.first()


async def current_user(
    credentials: Annotated[BearerCredentials, Security(bearer)],
    session: Annotated[AsyncSession, Depends(get_session)],
) -> User:
    """The calling user; a 401 without a bearer token, or with one nobody has."""
    user = await find_user(session, credentials.token)
    if user is None:
        raise bearer.invalid("The token is not valid.")
    return user


async def optional_user(
    credentials: Annotated[BearerCredentials | None, Security(bearer)],
    session: Annotated[AsyncSession, Depends(get_session)],
) -> User | None:
    """The calling user, or None for an anonymous request (no ``Authorization``); a token
    nobody has is still a 401, never taken for anonymous."""
    if credentials is None:
        return None
    return await current_user(credentials, session)


@router.post("/users", status_code=201, name="signup", raises=[Conflict])
async def signup(
    data: SignupIn, session: Annotated[AsyncSession, Depends(get_session)],
) -> SignupOut:
    """Create a user; the answer carries its token, the only time it is shown."""
    token = secrets.token_urlsafe(32)
    user = User(name=data.name, token_hash=hash_token(token))
    session.add(user)
    try:
        await session.commit()  # before answering: a taken name is a 409, not a lost 201
    except IntegrityError:
        await session.rollback()
        raise Conflict(f"The name {data.name!r} is taken.") from None
    return SignupOut(user.id, user.name, token)


@router.get("/me", name="me")
async def me(user: Annotated[User, Security(current_user)]) -> UserOut:
    return UserOut(user.id, user.name)
