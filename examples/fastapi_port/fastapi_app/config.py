"""Settings from the environment, read once (FastAPI's "Settings and Environment Variables"
pattern: a cached function that is also a dependency, so a test can override it)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Settings:
    database: str = "todo.db"
    secret_key: str = "change-me-to-a-long-random-secret-value"
    access_token_minutes: int = 30


@lru_cache
def get_settings() -> Settings:
    return Settings(
        database=os.environ.get("TODO_DATABASE", Settings.database),
        secret_key=os.environ.get("TODO_SECRET_KEY", Settings.secret_key),
        access_token_minutes=int(
            os.environ.get("TODO_ACCESS_TOKEN_MINUTES", Settings.access_token_minutes)),
    )
