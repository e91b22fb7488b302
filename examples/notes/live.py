"""Realtime notifications through :mod:`joey.channels`.

Each user has a channel, ``notes:user:<id>``. A handler publishes on it **after its commit**
(never announce a write that may still roll back); ``WS /notes/live`` relays the caller's
channel to the socket. A notification that cannot be sent (Redis down) does not fail the
request that wrote: the write is done, and is logged as not announced.
"""

from __future__ import annotations

import logging
from typing import Annotated

import msgspec
from sqlalchemy.exc import OperationalError

from examples.notes.auth import bearer, find_user
from examples.notes.database import Database, get_database
from examples.notes.schemas import NoteEvent
from joey import Depends, Response, Router, WebSocket
from joey.channels import Channels, ChannelsUnavailable
from joey.security import BearerCredentials, Security

logger = logging.getLogger("notes")

router = Router(prefix="/notes", name="live", tags=["notes"])

#: notifications a socket may fall behind before it is closed (1008); the client reconnects
#: and reloads its list
MAX_BEHIND = 200


def user_channel(user_id: int) -> str:
    return f"notes:user:{user_id}"


async def notify(channels: Channels, user_id: int, event: NoteEvent) -> None:
    """Tell the user's open sockets; a notification that cannot be sent is logged, the
    request goes on (what it wrote is committed)."""
    try:
        await channels.publish(user_channel(user_id), msgspec.json.encode(event))
    except ChannelsUnavailable:
        logger.warning("Notification %s for note %d not sent: channels unavailable",
                       event.event, event.note_id)


@router.websocket("/live", name="notifications")
async def live(
    websocket: WebSocket, channels: Channels,
    credentials: Annotated[BearerCredentials | None, Security(bearer)],
    database: Annotated[Database, Depends(get_database)],
) -> None:
    """The caller's notifications, one JSON text message each. Authenticated like HTTP
    (``Authorization: Bearer``); a refused handshake is a 401 (503 while the database is
    down)."""
    # A short session of its own: the request-scoped session would hold a database
    # connection for as long as the socket stays open.
    user = None
    if credentials is not None:
        try:
            async with database.sessions() as session:
                user = await find_user(session, credentials.token)
        except OperationalError:
            await websocket.deny(Response(b"The database is unavailable.", status_code=503,
                                          headers={"retry-after": "1"}))
            return
    if user is None:
        await websocket.deny(Response(b"A valid bearer token is required.", status_code=401,
                                      headers={"www-authenticate": bearer.challenge()}))
        return
    await websocket.accept()
    async with channels.subscribe(user_channel(user.id), max_queue=MAX_BEHIND,
                                  overflow="disconnect") as subscription:
        async for _ in channels.relay(websocket, subscription):
            pass  # what the client sends is ignored; the loop ends when it leaves
