"""The example app that `make run` serves: route groups, path parameters, JSON, errors, and a
small WebSocket chat room at http://127.0.0.1:8000/chat.

Run it with `make run`, `python examples/app.py`, or `uvicorn examples.app:app`. The chat runs
on :mod:`joey.channels`: in memory (one process) by default; with ``REDIS_URL`` set (for
instance ``redis://127.0.0.1:6379/0``) on Redis Streams, so rooms span every worker process
(``uvicorn examples.app:app --workers 4``).
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

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
from joey.channels import Channels, ChannelsUnavailable, InMemoryBackend
from joey.openapi import OpenAPI
from joey.security import BearerCredentials, HTTPBearer, Security
from joey.sse import EventSourceResponse

HERE = pathlib.Path(__file__).parent


class Book(msgspec.Struct):
    """A book in the library."""

    title: Annotated[str, msgspec.Meta(min_length=1, max_length=200, examples=["Dune"])]
    author: Annotated[str, msgspec.Meta(min_length=1, max_length=200,
                                        examples=["Frank Herbert"])]
    year: Annotated[int, msgspec.Meta(ge=-3000, le=3000, description="year of publication")
                    ] | None = None


class BookEntry(msgspec.Struct):
    """A book with its id."""

    id: int
    title: str
    author: str
    year: int | None = None


class BookList(msgspec.Struct):
    books: list[BookEntry]


class Created(msgspec.Struct):
    """The id of what was created (its URL is in the ``Location`` header)."""

    id: int


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


def make_channels() -> Channels:
    """Redis Streams when ``REDIS_URL`` is set (rooms shared by every process, resumable),
    else in memory (one process), keeping the last 1000 messages per room for resume."""
    url = os.environ.get("REDIS_URL")
    if url:
        from joey.channels import RedisStreamsBackend

        return Channels(RedisStreamsBackend(url, prefix="joey-example", max_len=10_000))
    return Channels(InMemoryBackend(history=1000))


ROOM_QUEUE = 1000  # messages a member may fall behind before it is dropped (closed with 1008)


@asynccontextmanager
async def lifespan(app: App) -> AsyncIterator[dict[str, Any]]:
    yield {"library": Library()}
    marker = os.environ.get("JOEY_EXAMPLE_SHUTDOWN_MARKER")
    if marker:  # lets the integration tests see that shutdown ran
        await asyncio.to_thread(pathlib.Path(marker).write_text, "shutdown complete")


app = App(lifespan=lifespan, channels=make_channels(), openapi=OpenAPI(
    title="Joey example", version="1.0.0",
    description="Books (typed JSON in and out), a chat room over WebSockets and SSE, streams.",
    tags=[{"name": "books", "description": "The library: list, read and add books."}],
))


@app.get("/")
async def index() -> dict[str, Any]:
    return {"name": "Joey example", "try": ["/books", "/books/1", "/chat", "/stream"]}


# --- a route group: /books ------------------------------------------------------------------

books = Router(prefix="/books", name="books", tags=["books"])


@books.get("")
async def list_books(request: Request, author: str | None = None) -> BookList:
    """List the books, or only those by ``author``."""
    library: Library = request.app.state.library
    return BookList([BookEntry(i, b.title, b.author, b.year) for i, b in library.books.items()
                     if author is None or b.author == author])


@books.get("/{book_id:int}", raises=[NotFound])
async def get_book(request: Request, book_id: int) -> Book:
    """One book, by id."""
    library: Library = request.app.state.library
    book = library.books.get(book_id)
    if book is None:
        raise NotFound(f"No book with id {book_id}.")
    return book


LOCATION = {"Location": {"required": True, "description": "the new book's URL",
                         "schema": {"type": "string"}}}


@books.post("", status_code=201, responses={201: {"headers": LOCATION}})
async def add_book(request: Request, book: Book) -> Created | JSONResponse:
    """Add a book; the answer has its id, and its URL in ``Location``."""
    book_id = request.app.state.library.add(book)
    location = request.url_path_for("books.get_book", book_id=book_id)
    return JSONResponse(Created(book_id), status_code=201, headers={"location": location})


# Changing a book needs the librarian's token (a demo: set JOEY_EXAMPLE_TOKEN in production).
bearer = HTTPBearer(description="The librarian's token (JOEY_EXAMPLE_TOKEN).")


async def librarian(token: Annotated[BearerCredentials, Security(bearer)]) -> str:
    if token.token != os.environ.get("JOEY_EXAMPLE_TOKEN", "librarian-token"):
        raise bearer.invalid("Unknown token.")
    return "librarian"


@books.put("/{book_id:int}", raises=[NotFound])
async def replace_book(request: Request, book_id: int, book: Book,
                       who: Annotated[str, Security(librarian)]) -> Book:
    """Replace a book (the librarian only). Security runs first: an anonymous client gets
    401, whatever its body."""
    library: Library = request.app.state.library
    if book_id not in library.books:
        raise NotFound(f"No book with id {book_id}.")
    library.books[book_id] = book
    return book


app.include_router(books)


@app.get("/stream")
async def stream() -> StreamingResponse:
    async def count() -> AsyncIterator[str]:
        for i in range(5):
            yield f"tick {i}\n"
            await asyncio.sleep(0.05)

    return StreamingResponse(count(), media_type="text/plain")


@app.get("/boom", include_in_schema=False)  # a deliberate bug is no part of the API
async def boom() -> None:
    raise RuntimeError("this is a bug: the client sees a generic 500, the log the traceback")


# --- the chat room --------------------------------------------------------------------------


@app.get("/chat")
async def chat_page() -> HTMLResponse:
    return HTMLResponse((HERE / "static" / "chat.html").read_text(encoding="utf-8"))


@app.websocket("/ws/chat/{room}")
async def chat(websocket: WebSocket, room: str, channels: Channels) -> None:
    """Every message goes to every member of the room, in every worker, in one order for all.
    A member that falls ``ROOM_QUEUE`` messages behind is dropped, never the room."""
    await websocket.accept()
    name = f"room:{room}"
    async with channels.subscribe(name, max_queue=ROOM_QUEUE,
                                  overflow="disconnect") as subscription:
        async for text in channels.relay(websocket, subscription):
            if not isinstance(text, str):
                continue
            try:
                await channels.publish(name, text[:1000])
            except ChannelsUnavailable:
                await websocket.send_text("(not sent: the chat service is unavailable)")


@app.post("/chat/{room}/messages", status_code=202)
async def post_to_room(room: str, request: Request, channels: Channels) -> dict[str, str | None]:
    """Say something in a room over HTTP (a 503 with Retry-After while Redis is down)."""
    text = (await request.body()).decode("utf-8", "replace")[:1000]
    return {"id": await channels.publish(f"room:{room}", text)}


@app.get("/chat/{room}/events")
async def room_events(room: str, request: Request, channels: Channels) -> EventSourceResponse:
    """The room as server-sent events; a client that reconnects (``Last-Event-ID``) to any
    worker gets what it missed first."""
    return await channels.event_source(request, f"room:{room}", event="message")


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
    return {"open_websockets": request.app.open_websockets, "pid": os.getpid()}


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ.get("PORT", "8000"))
    serve(app, host=os.environ.get("HOST", "127.0.0.1"), port=port, log_level="info")
