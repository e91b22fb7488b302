"""The app: its lifespan (the tables), its routers, and its API document (off unless asked
for, in Joey).

Run it with ``uvicorn examples.fastapi_port.joey_app.main:app``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from joey import App
from joey.openapi import OpenAPI

from .config import get_settings
from .database import create_tables
from .routers import items, users


@asynccontextmanager
async def lifespan(app: App) -> AsyncIterator[None]:
    await create_tables(get_settings().database)
    yield


app = App(lifespan=lifespan, openapi=OpenAPI(title="To-do", version="0.1.0"))
app.include_router(users.router)
app.include_router(items.router)
app.include_router(items.events)
