"""The app: its lifespan (the tables), and its routers.

Run it with ``uvicorn examples.fastapi_port.fastapi_app.main:app``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from .config import get_settings
from .database import create_tables
from .routers import items, users


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await create_tables(get_settings().database)
    yield


app = FastAPI(title="To-do", lifespan=lifespan)
app.include_router(users.router)
app.include_router(items.router)
app.include_router(items.events)
