"""Files as responses: streamed off the event loop, cacheable, resumable.

:class:`FileResponse` answers conditional requests (RFC 9110 §13) and range requests
(RFC 9110 §14) by itself, so a handler only names the file.

The file's validators are its ``ETag`` (modification time and size) and ``Last-Modified``.
The request's preconditions are evaluated as for every route that declares caching, by
:func:`joey.caching.evaluate_preconditions` (``If-Match``, ``If-Unmodified-Since`` → 412;
``If-None-Match``, ``If-Modified-Since`` → 304 for GET/HEAD, in RFC 9110 §13.2.2's order), and
a 304 carries what :func:`joey.caching.conditional.not_modified_headers` keeps. Then:

1. For GET with ``Range``: ``If-Range`` present and not matching → the whole file (200).
2. ``Range`` → 206 (one range), 206 ``multipart/byteranges`` (several), or 416.

Only a response whose status is 200 takes part in this; a ``FileResponse(..., status_code=404)``
(an error page) is always sent whole.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
import re
import secrets
import stat
import unicodedata
from collections.abc import Awaitable, Callable, Mapping
from email.utils import formatdate
from typing import IO, Literal
from urllib.parse import quote

from joey.caching.conditional import Validators, evaluate_preconditions, not_modified_headers
from joey.datastructures import Headers
from joey.exceptions import NotFound
from joey.responses import Response, wait_for_disconnect
from joey.types import Receive, Scope, Send

__all__ = ["FileResponse", "content_disposition"]

_ZERO_COPY = "http.response.zerocopysend"
_ENCODING_TYPES = {"gzip": "application/gzip", "bzip2": "application/x-bzip2",
                   "xz": "application/x-xz", "br": "application/x-brotli"}
_RANGE_SPEC = re.compile(r"(\d*)-(\d*)", re.ASCII)
_HAS_PREAD = hasattr(os, "pread")

Ranges = list[tuple[int, int]]  # half-open (start, stop) byte offsets


class FileResponse(Response):
    """Send a file from disk, in chunks read off the event loop.

    ``Content-Type`` is guessed from ``filename`` or ``path`` unless ``media_type`` is given.
    ``ETag``, ``Last-Modified`` and ``Accept-Ranges`` are always sent; conditional and
    ``Range`` requests are answered (304, 412, 206, 416). With ``filename``, a
    ``Content-Disposition`` header tells browsers to download (or, with
    ``content_disposition_type="inline"``, show) the file under that name, non-ASCII names
    included (RFC 6266 / RFC 5987). A missing file raises :class:`~joey.NotFound` (404) when
    the response is sent. If the server offers the ASGI zero-copy send extension, the file
    goes out with it instead of being read in Python.

    Example::

        import pathlib

        REPORTS = pathlib.Path("reports")

        @app.get("/reports/{year:int}")
        async def report(year: int) -> FileResponse:
            return FileResponse(REPORTS / f"{year}.pdf", filename=f"Bericht {year}.pdf")
    """

    __slots__ = (
        "chunk_size", "content_disposition_type", "filename", "max_ranges", "path", "stat_result",
    )

    def __init__(
        self,
        path: str | os.PathLike[str],
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        filename: str | None = None,
        content_disposition_type: Literal["attachment", "inline"] = "attachment",
        stat_result: os.stat_result | None = None,
        chunk_size: int = 64 * 1024,
        background: Callable[[], Awaitable[None]] | None = None,
        max_ranges: int = 16,
    ) -> None:
        self.path = os.fspath(path)
        if media_type is None:
            media_type = _guess_type(filename or self.path)
        super().__init__(b"", status_code, headers, media_type, background)
        self.filename = filename
        self.content_disposition_type = content_disposition_type
        self.stat_result = stat_result
        self.chunk_size = chunk_size
        self.max_ranges = max_ranges
        if filename is not None:
            self.headers.setdefault(
                "content-disposition", content_disposition(filename, content_disposition_type)
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        st = self.stat_result
        if st is None:
            st = await asyncio.to_thread(_stat_file, self.path)
        method = scope.get("method", "GET")
        request_headers = Headers(scope.get("headers", []))
        etag = f'"{st.st_mtime_ns:x}-{st.st_size:x}"'
        last_modified = formatdate(st.st_mtime, usegmt=True)
        validators = [(b"etag", etag.encode()), (b"last-modified", last_modified.encode())]
        size = st.st_size

        ranges: Ranges | None = None
        if self.status_code == 200:
            status = evaluate_preconditions(method, request_headers,
                                            Validators(etag, st.st_mtime))
            if status == 304:
                await self._send_empty(send, 304, validators, keep_user_headers=True)
                return
            if status == 412:
                await self._send_empty(send, 412, [])
                return
            range_header = request_headers.get("range")
            if range_header is not None and method == "GET" and _if_range_holds(
                request_headers.get("if-range"), etag, last_modified
            ):
                ranges = _parse_ranges(range_header, size, self.max_ranges)
                if ranges == []:
                    await self._send_empty(
                        send, 416, [(b"content-range", f"bytes */{size}".encode())]
                    )
                    return

        extra = [*validators, (b"accept-ranges", b"bytes")]
        head = method == "HEAD"
        if ranges is None:
            await self._send_file(scope, receive, send, self.status_code, extra, [(0, size)],
                                  size, head)
        elif len(ranges) == 1:
            start, stop = ranges[0]
            extra.append((b"content-range", f"bytes {start}-{stop - 1}/{size}".encode()))
            await self._send_file(scope, receive, send, 206, extra, ranges, stop - start, head)
        else:
            # Several ranges (GET only, so never HEAD here).
            await self._send_multipart(scope, receive, send, extra, ranges, size)

    def _start(self, status: int, extra: list[tuple[bytes, bytes]],
               length: int, content_type: bytes | None = None) -> dict[str, object]:
        headers = self.raw_headers(length)
        if content_type is not None:
            headers = [(k, v) for k, v in headers if k != b"content-type"]
            headers.append((b"content-type", content_type))
        present = {name for name, _ in headers}
        headers.extend(item for item in extra if item[0] not in present)
        return {"type": "http.response.start", "status": status, "headers": headers}

    async def _send_empty(self, send: Send, status: int, extra: list[tuple[bytes, bytes]],
                          keep_user_headers: bool = False) -> None:
        headers: list[tuple[bytes, bytes]] = []
        if keep_user_headers and self._headers is not None:
            # A 304 repeats what a cache must update (Cache-Control, Vary, validators...),
            # but no representation metadata (RFC 9110 §15.4.5).
            headers = not_modified_headers(self._headers.raw)
        present = {name for name, _ in headers}
        headers.extend(item for item in extra if item[0] not in present)
        if status != 304:
            headers.append((b"content-length", b"0"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    async def _send_file(self, scope: Scope, receive: Receive, send: Send, status: int,
                         extra: list[tuple[bytes, bytes]], ranges: Ranges, length: int,
                         head: bool) -> None:
        start_message = self._start(status, extra, length)
        completed = True
        if head:
            await send(start_message)
            await send({"type": "http.response.body", "body": b""})
        else:
            file = await asyncio.to_thread(_open_file, self.path)
            try:
                await send(start_message)
                parts = [(b"", start, stop, b"") for start, stop in ranges]
                completed = await _until_disconnect(
                    self._send_ranges(scope, send, file, parts), receive
                )
            finally:
                file.close()
        if completed and self.background is not None:
            await self.background()

    async def _send_multipart(self, scope: Scope, receive: Receive, send: Send,
                              extra: list[tuple[bytes, bytes]], ranges: Ranges,
                              size: int) -> None:
        boundary = secrets.token_hex(16).encode()
        user_type = self._headers.get("content-type") if self._headers is not None else None
        part_type = user_type or (self.content_type() or b"").decode("latin-1")
        # Each part: its header block, the bytes, then CRLF; the closing delimiter at the end
        # (RFC 9110 §14.6). Computed up front so Content-Length is exact.
        parts = []
        for start, stop in ranges:
            prefix = (f"--{boundary.decode()}\r\nContent-Type: {part_type}\r\n"
                      f"Content-Range: bytes {start}-{stop - 1}/{size}\r\n\r\n").encode("latin-1")
            parts.append((prefix, start, stop, b"\r\n"))
        closing = b"--" + boundary + b"--\r\n"
        length = sum(len(p) + (stop - start) + len(s) for p, start, stop, s in parts)
        length += len(closing)
        content_type = b"multipart/byteranges; boundary=" + boundary
        start_message = self._start(206, extra, length, content_type)
        file = await asyncio.to_thread(_open_file, self.path)
        try:
            await send(start_message)
            completed = await _until_disconnect(
                self._send_ranges(scope, send, file, parts, closing), receive
            )
        finally:
            file.close()
        if completed and self.background is not None:
            await self.background()

    async def _send_ranges(self, scope: Scope, send: Send, file: IO[bytes],
                           parts: list[tuple[bytes, int, int, bytes]],
                           closing: bytes = b"") -> None:
        zero_copy = _ZERO_COPY in (scope.get("extensions") or {})
        chunk_size = self.chunk_size
        for prefix, start, stop, suffix in parts:
            if prefix:
                await send({"type": "http.response.body", "body": prefix, "more_body": True})
            if zero_copy:
                await send({"type": _ZERO_COPY, "file": file, "offset": start,
                            "count": stop - start, "more_body": True})
            else:
                offset = start
                while offset < stop:
                    chunk = await asyncio.to_thread(
                        _read_at, file, offset, min(chunk_size, stop - offset)
                    )
                    if not chunk:  # the file shrank under us: stop rather than spin
                        break
                    offset += len(chunk)
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if suffix:
                await send({"type": "http.response.body", "body": suffix, "more_body": True})
        await send({"type": "http.response.body", "body": closing, "more_body": False})


def _stat_file(path: str) -> os.stat_result:
    try:
        st = os.stat(path)
    except FileNotFoundError as error:
        raise NotFound("File not found.") from error
    if not stat.S_ISREG(st.st_mode):
        raise NotFound("File not found.") from IsADirectoryError(path)
    return st


def _open_file(path: str) -> IO[bytes]:
    try:
        return open(path, "rb")  # closed by the caller once sent
    except FileNotFoundError as error:
        raise NotFound("File not found.") from error


def _read_at(file: IO[bytes], offset: int, size: int) -> bytes:
    # pread reads at an offset in one system call and leaves the file position alone.
    if _HAS_PREAD:
        return os.pread(file.fileno(), size, offset)
    file.seek(offset)  # pragma: no cover - Windows
    return file.read(size)  # pragma: no cover


async def _until_disconnect(body: Awaitable[None], receive: Receive) -> bool:
    """Run ``body``; stop it if the client disconnects first. True if it ran to the end."""
    sending = asyncio.ensure_future(body)
    watcher = asyncio.ensure_future(wait_for_disconnect(receive))
    try:
        done, _ = await asyncio.wait({sending, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sending, watcher):
            task.cancel()
        await asyncio.gather(sending, watcher, return_exceptions=True)
    if not sending.cancelled() and (error := sending.exception()) is not None and (
        not isinstance(error, OSError)  # the peer went away mid-send
    ):
        raise error
    return sending in done and not sending.cancelled() and sending.exception() is None


def _guess_type(name: str) -> str:
    media_type, encoding = mimetypes.guess_type(name, strict=False)
    if encoding is not None:
        # "x.tar.gz" is (application/x-tar, gzip): sent without Content-Encoding, the bytes
        # really are a gzip file.
        return _ENCODING_TYPES.get(encoding, "application/octet-stream")
    return media_type or "application/octet-stream"


def content_disposition(filename: str, disposition: str = "attachment") -> str:
    """A ``Content-Disposition`` value for ``filename`` (RFC 6266).

    A plain ASCII name is sent as ``filename="..."``; any other name gets an ASCII fallback
    plus ``filename*=UTF-8''...`` (RFC 5987), which every current browser prefers.

    Example::

        from joey.files import content_disposition

        assert content_disposition("Grüße.txt") == (
            'attachment; filename="Gru_e.txt"; '  # the ASCII fallback
            "filename*=UTF-8''Gr%C3%BC%C3%9Fe.txt"
        )
    """
    # Quotes, backslashes and control characters never go in the quoted fallback: browsers
    # disagree on escapes, and CR/LF would be header injection.
    fallback = "".join(
        "_" if ch in '"\\' or not 32 <= ord(ch) < 127 else ch
        for ch in unicodedata.normalize("NFKD", filename)
        if not unicodedata.combining(ch)
    )
    if fallback == filename:
        return f'{disposition}; filename="{filename}"'
    encoded = quote(filename, safe="!#$&+-.^_`|~")
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


def _if_range_holds(value: str | None, etag: str, last_modified: str) -> bool:
    if value is None:
        return True
    value = value.strip()
    if value.startswith(('"', "W/")):
        return value == etag  # strong comparison only
    return value == last_modified


def _parse_ranges(value: str, size: int, max_ranges: int) -> Ranges | None:
    """The satisfiable ranges of a ``Range`` value, sorted and merged.

    None means "ignore the header and send everything" (another unit, bad syntax, or more
    than ``max_ranges`` ranges: RFC 9110 lets a server ignore Range, and this way a hostile
    header costs at most one full response). An empty list means unsatisfiable (416).
    """
    unit, sep, specs = value.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    if specs.count(",") >= max_ranges:
        return None
    ranges: Ranges = []
    for spec in specs.split(","):
        spec = spec.strip()
        if not spec:
            continue
        match = _RANGE_SPEC.fullmatch(spec)
        if match is None:
            return None
        first, last = match.groups()
        try:
            if first:
                start = int(first)
                if last and int(last) < start:
                    return None
                if start < size:
                    ranges.append((start, min(int(last) + 1, size) if last else size))
            elif last:
                suffix = int(last)
                if suffix > 0 and size > 0:
                    ranges.append((max(size - suffix, 0), size))
            else:
                return None
        except ValueError:  # a number too long for int()
            return None
    # Overlapping or adjacent ranges become one, so the response is never larger than the
    # file however the ranges were written.
    ranges.sort()
    merged: Ranges = []
    for start, stop in ranges:
        if merged and start <= merged[-1][1]:
            if stop > merged[-1][1]:
                merged[-1] = (merged[-1][0], stop)
        else:
            merged.append((start, stop))
    return merged
