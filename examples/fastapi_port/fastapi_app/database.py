"""The schema, and the background work that writes without a request (its own connection)."""

from __future__ import annotations

import aiosqlite

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY, username TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY, owner_id INTEGER NOT NULL REFERENCES users(id),
    title TEXT NOT NULL, description TEXT, done INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, item_id INTEGER NOT NULL,
    action TEXT NOT NULL);
"""


async def create_tables(database: str) -> None:
    async with aiosqlite.connect(database) as db:
        await db.executescript(SCHEMA)
        await db.commit()


async def record_event(database: str, user_id: int, item_id: int, action: str) -> None:
    """Background work: runs after the response, so it opens a connection of its own."""
    async with aiosqlite.connect(database) as db:
        await db.execute("INSERT INTO events (user_id, item_id, action) VALUES (?, ?, ?)",
                         (user_id, item_id, action))
        await db.commit()
