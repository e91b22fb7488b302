"""Passwords (PBKDF2, from the standard library) and access tokens: one ``JWTBearer`` reads
them as OAuth2's password flow sends them, verifies them and issues them (PyJWT underneath)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Annotated

from joey import Depends
from joey.security import OAuth2PasswordBearer
from joey.security.jwt import JWTBearer

from .config import Settings, get_settings


def hash_password(password: str) -> str:
    salt = secrets.token_hex(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), 100_000)
    return f"{salt}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    salt, _, expected = stored.partition("$")
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), 100_000)
    return hmac.compare_digest(digest.hex(), expected)


def secret_key(settings: Annotated[Settings, Depends(get_settings)]) -> str:
    return settings.secret_key


# The key is a dependency, resolved for every request: a test that overrides the settings
# changes it. A token without "exp" or "sub", expired, or signed with another key is a 401.
access_tokens = JWTBearer(Depends(secret_key), algorithms=["HS256"], require=["exp", "sub"],
                          scheme=OAuth2PasswordBearer("/token"))
