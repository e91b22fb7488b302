"""Streamed responses: a body produced chunk by chunk while the response is going out.

:class:`StreamingResponse` pulls from an async (or sync) iterator, stops it when the client
disconnects or the app shuts down, and holds async generators, which mypyc does not compile:
this module stays interpreted in the compiled build (its base, :class:`~joey.responses.Response`,
is compiled and allows it). ``from joey.responses import StreamingResponse`` works too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, Iterable, Iterator, Mapping

from joey.responses import BackgroundCallable, Response, wait_for_disconnect
from joey.types import Receive, Scope, Send

logger = logging.getLogger("joey")


class StreamingResponse(Response):
    """A body produced chunk by chunk by an async or sync iterator.

    The response stops the iterator (cancelling it) as soon as the client disconnects, so no
    work goes on for a gone client. Each chunk waits for the server to accept it, so a slow
    client slows the producer instead of growing memory. A sync iterator runs in a thread.

    At shutdown (``App.close_streams``, which ``joey.serve`` calls before the server waits for
    open connections) the response stops pulling from the iterator, closes it (so its
    ``finally`` blocks run), sends :meth:`last_chunk` and ends the body cleanly.

    Example::

        @app.get("/numbers")
        async def numbers() -> StreamingResponse:
            async def lines() -> AsyncIterator[str]:
                for i in range(10):
                    yield f"{i}\\n"

            return StreamingResponse(lines(), media_type="text/plain")
    """

    __slots__ = ("content",)

    def __init__(
        self,
        content: AsyncIterable[str | bytes] | Iterable[str | bytes],
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: BackgroundCallable | None = None,
    ) -> None:
        super().__init__(b"", status_code, headers, media_type, background)
        self.content = content

    def last_chunk(self) -> bytes:
        """What goes out after the iterator was stopped at shutdown (nothing, here)."""
        return b""

    async def _chunks(self) -> AsyncIterable[bytes]:
        content = self.content
        charset = self.charset
        if isinstance(content, AsyncIterable):
            async for chunk in content:
                yield chunk.encode(charset) if isinstance(chunk, str) else chunk
        else:
            iterator = iter(content)
            while True:
                item = await asyncio.to_thread(_next_or_none, iterator)
                if item is None:
                    break
                yield item.encode(charset) if isinstance(item, str) else item

    async def _send_body(self, send: Send) -> None:
        async for chunk in self._chunks():
            if chunk:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({
                "type": "http.response.start",
                "status": self.status_code,
                "headers": self.raw_headers(None),
            })
            if scope.get("method") == "HEAD":
                await send({"type": "http.response.body", "body": b""})
                if self.background is not None:
                    await self.background()
                return
        except OSError:
            logger.debug("Client disconnected before %r started", self)
            return
        stream = asyncio.ensure_future(self._send_body(send))
        watcher = asyncio.ensure_future(wait_for_disconnect(receive))
        waiting: set[asyncio.Future[None]] = {stream, watcher}
        # The app's "streams, end now" signal: one future shared by every open stream, so
        # watching for shutdown costs no task of its own.
        watch_stream = getattr(scope.get("app"), "watch_stream", None)
        if watch_stream is not None:
            waiting.add(watch_stream())
        outcome = "cancelled"  # what ended the stream, if the wait itself is not cancelled
        try:
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            outcome = ("finished" if stream in done else
                       "disconnected" if watcher in done else "shutdown")
        finally:
            for task in (stream, watcher):
                if not task.done():
                    task.cancel()
            await asyncio.gather(stream, watcher, return_exceptions=True)
            if outcome != "finished":
                # Also under cancellation (a server's graceful-shutdown timeout): the
                # iterator's `finally` blocks must run now, not whenever it is collected.
                await self._close_content()
        if outcome == "finished":
            error = stream.exception()
            if error is not None and not isinstance(error, OSError):
                raise error
            if error is None and self.background is not None:
                await self.background()
        elif outcome == "disconnected":
            logger.debug("Client disconnected; stopped streaming %r", self)
        else:
            logger.debug("Shutting down; stopped streaming %r", self)
            try:
                last = self.last_chunk()
                if last:
                    await send({"type": "http.response.body", "body": last, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
            except OSError:
                logger.debug("Client went away while %r was ending", self)

    async def _close_content(self) -> None:
        aclose = getattr(self.content, "aclose", None)
        close = getattr(self.content, "close", None)
        if aclose is not None:
            await aclose()
        elif close is not None:  # a sync generator: run its `finally` now, off the loop
            try:
                await asyncio.to_thread(close)
            except ValueError:  # still running `next` in its thread; it ends on its own
                logger.debug("Sync iterator of %r was busy when it was stopped", self)


def _next_or_none(iterator: Iterator[str | bytes]) -> str | bytes | None:
    return next(iterator, None)


__all__ = [
    "StreamingResponse",
]
