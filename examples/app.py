"""The example app that `make run` serves: route groups, path parameters, JSON, errors, and a
small WebSocket chat room at http://127.0.0.1:8000/chat.

Run it with `make run`, `python examples/app.py`, or `uvicorn examples.app:app`.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec

from joey import (
    App,
    HTMLResponse,
    JSONResponse,
    NotFound,
    Request,
    Router,
    StreamingResponse,
    WebSocket,
    serve,
)

HERE = pathlib.Path(__file__).parent


class Book(msgspec.Struct):
    title: str
    author: str
    year: int | None = None


class Library:
    """An in-memory store, created at startup and reachable as ``app.state.library``."""

    def __init__(self) -> None:
        self.books: dict[int, Book] = {1: Book("Dune", "Frank Herbert", 1965)}
        self.next_id = 2

    def add(self, book: Book) -> int:
        book_id = self.next_id
        self.books[book_id] = book
        self.next_id += 1
        return book_id


class Member:
    """One socket in a room, with its own outbox: a bounded queue that a sender task of its
    own drains. A broadcast only puts into outboxes, so it never waits on a member."""

    OUTBOX_SIZE = 1000  # messages (at most 1000 characters each) a member may fall behind

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.outbox: asyncio.Queue[str] = asyncio.Queue(self.OUTBOX_SIZE)
        self.too_slow: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def send_outbox(self) -> None:
        while True:
            await self.websocket.send_text(await self.outbox.get())


class Room:
    """A chat room: every message goes to every member, in one order for all.

    ``broadcast`` does not await, so nobody joins or leaves while it walks the members, and
    a member that stops reading fills only its own outbox: when that is full the member is
    dropped (closed with 1008), never the room.
    """

    def __init__(self) -> None:
        self.members: set[Member] = set()

    def broadcast(self, text: str) -> None:
        for member in list(self.members):
            try:
                member.outbox.put_nowait(text)
            except asyncio.QueueFull:
                self.members.discard(member)
                member.too_slow.set_result(None)

    async def serve(self, websocket: WebSocket) -> None:
        """Relay ``websocket``'s messages to the room, and the room's to it, until it leaves
        or falls too far behind."""
        member = Member(websocket)
        self.members.add(member)
        sender = asyncio.ensure_future(member.send_outbox())
        receiver = asyncio.ensure_future(self._relay(websocket))
        try:
            await asyncio.wait({sender, receiver, member.too_slow},
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.members.discard(member)
            for task in (sender, receiver):
                task.cancel()
            await asyncio.gather(sender, receiver, return_exceptions=True)
        if member.too_slow.done():
            await websocket.close(1008, "Too slow: messages were not read")

    async def _relay(self, websocket: WebSocket) -> None:
        async for text in websocket.iter_text():
            self.broadcast(text[:1000])


@asynccontextmanager
async def lifespan(app: App) -> AsyncIterator[dict[str, Any]]:
    yield {"library": Library(), "rooms": {}}
    marker = os.environ.get("JOEY_EXAMPLE_SHUTDOWN_MARKER")
    if marker:  # lets the integration tests see that shutdown ran
        await asyncio.to_thread(pathlib.Path(marker).write_text, "shutdown complete")


app = App(lifespan=lifespan)


@app.get("/")
async def index() -> dict[str, Any]:
    return {"name": "Joey example", "try": ["/books", "/books/1", "/chat", "/stream"]}


# --- a route group: /books ------------------------------------------------------------------

books = Router(prefix="/books", name="books")


@books.get("")
async def list_books(request: Request) -> dict[str, Any]:
    library: Library = request.app.state.library
    author = request.query.get("author")
    found = {i: b for i, b in library.books.items() if author is None or b.author == author}
    return {"books": [{"id": i, **msgspec.structs.asdict(b)} for i, b in found.items()]}


@books.get("/{book_id:int}")
async def get_book(request: Request, book_id: int) -> Book:
    library: Library = request.app.state.library
    book = library.books.get(book_id)
    if book is None:
        raise NotFound(f"No book with id {book_id}.")
    return book


@books.post("", status_code=201)
async def add_book(request: Request) -> JSONResponse:
    try:
        book = msgspec.json.decode(await request.body(), type=Book)
    except msgspec.ValidationError as exc:
        return JSONResponse({"error": str(exc)}, status_code=422)
    except msgspec.DecodeError as exc:
        return JSONResponse({"error": f"Invalid JSON: {exc}"}, status_code=400)
    book_id = request.app.state.library.add(book)
    return JSONResponse({"id": book_id}, status_code=201,
                        headers={"location": request.url_for("books.get_book", book_id=book_id)})


app.include_router(books)


@app.get("/stream")
async def stream() -> StreamingResponse:
    async def count() -> AsyncIterator[str]:
        for i in range(5):
            yield f"tick {i}\n"
            await asyncio.sleep(0.05)

    return StreamingResponse(count(), media_type="text/plain")


@app.get("/boom")
async def boom() -> None:
    raise RuntimeError("this is a bug: the client sees a generic 500, the log the traceback")


# --- the chat room --------------------------------------------------------------------------


@app.get("/chat")
async def chat_page() -> HTMLResponse:
    return HTMLResponse((HERE / "static" / "chat.html").read_text(encoding="utf-8"))


@app.websocket("/ws/chat/{room}")
async def chat(websocket: WebSocket, room: str) -> None:
    rooms: dict[str, Room] = websocket.app.state.rooms
    await websocket.accept()
    await rooms.setdefault(room, Room()).serve(websocket)


@app.websocket("/ws/echo")
async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await websocket.send_text(message["text"])
        else:
            await websocket.send_bytes(message["bytes"])


@app.websocket("/ws/json")
async def json_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    async for data in websocket.iter_json():
        await websocket.send_json({"echo": data})


@app.get("/stats")
async def stats(request: Request) -> dict[str, int]:
    return {"open_websockets": request.app.open_websockets}


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ.get("PORT", "8000"))
    serve(app, host=os.environ.get("HOST", "127.0.0.1"), port=port, log_level="info")
