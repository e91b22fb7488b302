"""Where the engine and the sessions live.

- **The engine** (a connection pool) is made once per app, at startup, by the app's lifespan
  (:func:`examples.notes.app.create_app`), and disposed at shutdown. Handlers never make one.
- **A session** is made per request by :func:`get_session`, a generator dependency, and closed
  after the response. Handlers that write **commit before they answer**: Joey tears a
  generator dependency down after the response has been sent, so a commit there would come
  after the client was told "201 Created", and a failed commit would be a write the client
  believes in but that never happened. A failed commit inside the handler is an error
  response instead (a 409 for a taken name, a 503 for a locked database).
- On an error the session rolls back; changes left uncommitted by a successful handler are
  discarded and logged (a forgotten ``commit``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from examples.notes.models import Base
from examples.notes.settings import Settings
from joey import Depends, HTTPConnection

logger = logging.getLogger("notes")


class Database:
    """The engine and the session factory of one app."""

    def __init__(self, settings: Settings) -> None:
        self.engine: AsyncEngine = create_async_engine(
            settings.database_url,
            # SQLite waits this long for a lock, then raises OperationalError (a 503)
            connect_args={"timeout": settings.database_timeout}
            if settings.database_url.startswith("sqlite") else {},
        )
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_foreign_keys)
        # expire_on_commit=False: after the commit the handler still reads the objects it
        # wrote to build its answer (an AsyncSession cannot reload them lazily).
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    async def create_tables(self) -> None:
        """Create the tables that do not exist yet (a real service would run migrations)."""
        async with self.engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)

    async def dispose(self) -> None:
        await self.engine.dispose()


def _sqlite_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")  # SQLite leaves them off by default
    cursor.close()


def get_database(connection: HTTPConnection) -> Database:
    """The app's :class:`Database`, made by its lifespan (HTTP and WebSocket routes alike)."""
    database: Database = connection.app.state.database
    return database


async def get_session(
    database: Annotated[Database, Depends(get_database)],
) -> AsyncIterator[AsyncSession]:
    """One session per request. Commit in the handler, before answering."""
    async with database.sessions() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        if session.new or session.dirty or session.deleted:
            logger.warning("Uncommitted changes discarded at the end of the request: "
                           "commit in the handler, before answering")
