"""The signed-in user's items: create, list a page, read, change, delete. Creating and
deleting record an event in the background, after the response."""

from __future__ import annotations

from typing import Annotated, Any

import aiosqlite
import msgspec

from joey import BackgroundTasks, Depends, NotFound, Router, status

from ..config import Settings, get_settings
from ..database import record_event
from ..dependencies import CurrentUser, Database, Page
from ..schemas import EventOut, ItemIn, ItemOut, ItemPage, ItemPatch, UserOut

# raises: every route of the router documents the 404, as FastAPI's responses= does
router = Router(prefix="/items", tags=["items"], raises=[NotFound])
events = Router(prefix="/events", tags=["items"])


def item_out(row: Any) -> ItemOut:
    return ItemOut(id=row["id"], title=row["title"], description=row["description"],
                   done=bool(row["done"]))


async def find_item(db: aiosqlite.Connection, user: UserOut, item_id: int) -> ItemOut:
    cursor = await db.execute(
        "SELECT * FROM items WHERE id = ? AND owner_id = ?", (item_id, user.id))
    row = await cursor.fetchone()
    if row is None:  # someone else's item is a 404 too: a 403 would say it exists
        raise NotFound(f"No item {item_id}")
    return item_out(row)


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_item(
    item: ItemIn, user: CurrentUser, db: Database, background: BackgroundTasks,
    settings: Annotated[Settings, Depends(get_settings)],
) -> ItemOut:
    cursor = await db.execute(
        "INSERT INTO items (owner_id, title, description) VALUES (?, ?, ?)",
        (user.id, item.title, item.description))
    assert cursor.lastrowid is not None
    background.add_task(record_event, settings.database, user.id, cursor.lastrowid, "created")
    return ItemOut(id=cursor.lastrowid, title=item.title, description=item.description,
                   done=False)


@router.get("")
async def list_items(user: CurrentUser, db: Database,
                     page: Annotated[Page, Depends()]) -> ItemPage:
    cursor = await db.execute(
        "SELECT * FROM items WHERE owner_id = ? ORDER BY id LIMIT ? OFFSET ?",
        (user.id, page.limit, page.offset))
    rows = await cursor.fetchall()
    cursor = await db.execute("SELECT count(*) FROM items WHERE owner_id = ?", (user.id,))
    (total,) = await cursor.fetchone() or (0,)
    return ItemPage(items=[item_out(row) for row in rows], total=total, offset=page.offset,
                    limit=page.limit)


@router.get("/{item_id}")
async def read_item(item_id: int, user: CurrentUser, db: Database) -> ItemOut:
    return await find_item(db, user, item_id)


@router.patch("/{item_id}")
async def update_item(item_id: int, changes: ItemPatch, user: CurrentUser,
                      db: Database) -> ItemOut:
    item = await find_item(db, user, item_id)
    sent = {name: value for name, value in msgspec.structs.asdict(changes).items()
            if value is not msgspec.UNSET}
    updated = msgspec.structs.replace(item, **sent)
    await db.execute("UPDATE items SET title = ?, description = ?, done = ? WHERE id = ?",
                     (updated.title, updated.description, updated.done, item_id))
    return updated


@router.delete("/{item_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_item(
    item_id: int, user: CurrentUser, db: Database, background: BackgroundTasks,
    settings: Annotated[Settings, Depends(get_settings)],
) -> None:
    await find_item(db, user, item_id)
    await db.execute("DELETE FROM items WHERE id = ?", (item_id,))
    background.add_task(record_event, settings.database, user.id, item_id, "deleted")


@events.get("")
async def list_events(user: CurrentUser, db: Database) -> list[EventOut]:
    cursor = await db.execute(
        "SELECT item_id, action FROM events WHERE user_id = ? ORDER BY id", (user.id,))
    return [EventOut(item_id=row["item_id"], action=row["action"])
            for row in await cursor.fetchall()]
