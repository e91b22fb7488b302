"""An uploaded file: its metadata, and its content spooled to a temporary file.

Made by the form parser (:mod:`joey.forms`) for each file part of a ``multipart/form-data``
body, and usable on its own (tests, other parsers). Needs no extra.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from io import BytesIO
from typing import IO, Any, TypeVar

from joey.datastructures import Headers

__all__ = ["UploadFile", "close_all"]

MiB = 1024 * 1024

_T = TypeVar("_T")


class UploadFile:
    """One uploaded file: its metadata and its content in a (spooled) temporary file.

    The content stays in memory while small and moves to a temporary file on disk beyond a
    threshold. The async methods run disk I/O in a worker thread, so a large upload never
    blocks the event loop; ``file`` is the underlying synchronous file object for libraries
    that want one. ``filename`` is what the client claims: never use it as a path as is.

    Example::

        @app.post("/avatar")
        async def avatar(request: Request) -> dict[str, str]:
            upload = (await request.form())["avatar"]
            if not isinstance(upload, UploadFile) or upload.content_type != "image/png":
                raise UnsupportedMediaType("PNG only")
            head = await upload.read(8)
            await upload.seek(0)
            return {"signature": head.hex()}
    """

    __slots__ = ("_in_memory", "content_type", "file", "filename", "headers", "size")

    def __init__(
        self,
        file: IO[bytes] | None = None,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        headers: Headers | None = None,
        size: int | None = None,
        spool_max_size: int = 1 * MiB,
    ) -> None:
        if file is None:
            file = tempfile.SpooledTemporaryFile(max_size=spool_max_size)  # noqa: SIM115 - closed by close()
            size = 0 if size is None else size
        self.file: IO[bytes] = file
        self.filename = filename
        self.headers = headers if headers is not None else Headers()
        if content_type is None:
            content_type = self.headers.get("content-type")
        self.content_type: str | None = content_type
        self.size = size
        self._in_memory = isinstance(file, BytesIO)

    @property
    def in_memory(self) -> bool:
        """True while the content is held in memory (no disk I/O to wait for)."""
        if self._in_memory:
            return True
        return getattr(self.file, "_rolled", True) is False

    async def _run(self, function: Callable[..., _T], *args: Any) -> _T:
        # perf: a call on an in-memory buffer is far cheaper than handing it to a thread
        if self.in_memory:
            return function(*args)
        return await asyncio.to_thread(function, *args)

    async def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes (everything left when negative)."""
        return await self._run(self.file.read, size)

    async def seek(self, offset: int, whence: int = 0) -> int:
        """Move to ``offset`` (from the start by default); returns the new position."""
        return await self._run(self.file.seek, offset, whence)

    async def write(self, data: bytes) -> int:
        """Write ``data`` at the current position; returns the number of bytes written."""
        file = self.file
        if self.in_memory and not self._would_roll(len(data)):
            written = file.write(data)
        else:
            # Either on disk already, or this write makes the spooled file copy its whole
            # buffer to disk: both are blocking I/O.
            written = await asyncio.to_thread(file.write, data)
        if self.size is not None:
            self.size += written
        return written

    def _would_roll(self, extra: int) -> bool:
        max_size = getattr(self.file, "_max_size", 0)
        return bool(max_size) and self.file.tell() + extra > max_size

    async def rollover(self) -> None:
        """Move an in-memory spooled file to disk now (a no-op for other files)."""
        rollover = getattr(self.file, "rollover", None)
        if rollover is not None and self.in_memory and not self._in_memory:
            await asyncio.to_thread(rollover)

    async def close(self) -> None:
        """Close the file; a temporary file is deleted."""
        if self.file.closed:
            return
        await self._run(self.file.close)

    @property
    def closed(self) -> bool:
        return self.file.closed

    def __repr__(self) -> str:
        return (
            f"UploadFile(filename={self.filename!r}, content_type={self.content_type!r}, "
            f"size={self.size!r})"
        )


async def close_all(files: list[UploadFile]) -> None:
    """Close every file even if one close fails, then raise the first failure."""
    results = [await _try(upload.close()) for upload in files]
    for error in results:
        if error is not None:
            raise error


async def _try(awaitable: Any) -> BaseException | None:
    try:
        await awaitable
    except Exception as error:
        return error
    return None
