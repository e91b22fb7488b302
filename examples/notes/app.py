"""The notes service, put together: :func:`create_app` builds one app from its settings.

Run it with ``uvicorn examples.notes.main:app`` (settings from ``NOTES_*`` variables; see
:mod:`examples.notes.settings`), or build one in a test: ``create_app(Settings(...))``. The
app's parts, one module each:

- :mod:`~examples.notes.settings`: settings from the environment;
- :mod:`~examples.notes.models`: the tables; :mod:`~examples.notes.database`: where the engine
  and the sessions live, and when to commit;
- :mod:`~examples.notes.auth`: sign-up and bearer tokens;
- :mod:`~examples.notes.notes`: the notes API, pagination, uploads;
- :mod:`~examples.notes.live`: notifications over a WebSocket, through channels;
- :mod:`~examples.notes.pages`: the HTML page.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from examples.notes import auth, live, notes, pages
from examples.notes.database import Database
from examples.notes.settings import Settings
from joey import App, ProblemResponse, Request, ServiceUnavailable
from joey.channels import Channels, InMemoryBackend
from joey.openapi import OpenAPI

logger = logging.getLogger("notes")


@asynccontextmanager
async def lifespan(app: App) -> AsyncIterator[dict[str, Any]]:
    """Startup: the engine, the tables, the upload directory. Shutdown: the engine's
    connections are closed."""
    settings: Settings = app.state.settings
    settings.upload_dir.mkdir(parents=True, exist_ok=True)
    database = Database(settings)
    try:
        await database.create_tables()
        yield {"database": database}
    finally:
        await database.dispose()


async def database_unavailable(request: Request, exc: Exception) -> ProblemResponse:
    """The database is locked, unreachable or out of connections: a 503 the client retries,
    not a 500. Logged as a warning: it is an outage, not a bug."""
    logger.warning("Database unavailable for %s %s: %s", request.method, request.url.path,
                   exc)
    return ProblemResponse.from_error(
        ServiceUnavailable("The database is unavailable; try again shortly.", retry_after=1))


def make_channels(settings: Settings) -> Channels:
    """Redis Streams when ``NOTES_REDIS_URL`` is set (every worker process sees every
    notification), else in memory (one process)."""
    if settings.redis_url:
        from joey.channels import RedisStreamsBackend

        return Channels(RedisStreamsBackend(settings.redis_url, prefix="notes", max_len=1000))
    return Channels(InMemoryBackend())


def create_app(settings: Settings | None = None) -> App:
    """A new notes app; ``settings`` default to :meth:`Settings.from_env`."""
    settings = Settings.from_env() if settings is None else settings
    app = App(
        debug=settings.debug,
        lifespan=lifespan,
        channels=make_channels(settings),
        exception_handlers={OperationalError: database_unavailable,
                            PoolTimeout: database_unavailable},
        openapi=OpenAPI(title="Notes", version="1.0.0"),
    )
    app.state.settings = settings
    app.state.templates = pages.make_templates()
    app.include_router(auth.router)
    app.include_router(notes.router)
    app.include_router(live.router)
    app.include_router(pages.router)
    return app
