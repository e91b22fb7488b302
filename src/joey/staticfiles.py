"""Serve a directory over HTTP, with no way out of it.

The request path is never handed to the filesystem as is. It is split into segments, and the
request is refused before any disk access when a segment could climb out or mean something
else on some platform:

* ``..`` (also when sent as ``%2e%2e``: the server decodes it before we see it) → 404;
* an encoded separator ``%2f`` or ``%5c`` in the raw path, a backslash, a drive letter
  (``C:``) → 404;
* a NUL byte, or a path that is not valid UTF-8 once decoded → 400.

Empty and ``.`` segments are dropped, so ``//etc/passwd`` is just ``etc/passwd`` *inside* the
directory. Then, unless ``follow_symlinks=True``, the real path (symlinks resolved) must still
lie inside the directory: a symlink pointing outside answers 404. Only files are served, only
for GET and HEAD (405 otherwise).
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
from urllib.parse import quote, unquote_to_bytes

from joey.exceptions import BadRequest, HTTPError, MethodNotAllowed, NotFound
from joey.files import FileResponse
from joey.paths import relative_path
from joey.responses import ProblemResponse, RedirectResponse
from joey.types import Receive, Scope, Send

__all__ = ["StaticFiles"]

_DRIVE = re.compile(r"^[A-Za-z]:")
_ENCODED_SEPARATOR = re.compile(rb"%(2f|5c)", re.IGNORECASE)
_FILE, _DIRECTORY, _MISSING = "file", "directory", "missing"


class StaticFiles:
    """An ASGI app serving the files of ``directory``, to be mounted at a prefix.

    Files go out as :class:`~joey.FileResponse` (ETag, Last-Modified, 304, Range) with a
    ``Cache-Control`` header (``cache_control``; None for none). With ``html=True`` a directory
    serves its ``index.html`` (a request without the trailing slash is redirected to the
    slash form, so relative links in the page work) and a missing file serves the
    directory's ``404.html``, if there is one, with status 404.

    Symlinks are followed only while their target stays inside the directory, unless
    ``follow_symlinks=True`` (then any target is served: only for directories you control).

    <!-- docs-test: fragment: needs the directories static/ and site/ -->
    Example::

        app.mount("/static", StaticFiles("static"))
        app.mount("/", StaticFiles("site", html=True))
    """

    __slots__ = ("cache_control", "directory", "follow_symlinks", "html", "root")

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        html: bool = False,
        follow_symlinks: bool = False,
        cache_control: str | None = "public, max-age=3600",
        check_dir: bool = True,
    ) -> None:
        self.directory = os.fspath(directory)
        # Resolved once: the containment check compares real paths with this.
        self.root = os.path.realpath(self.directory)
        self.html = html
        self.follow_symlinks = follow_symlinks
        self.cache_control = cache_control
        if check_dir and not os.path.isdir(self.root):
            raise RuntimeError(
                f"StaticFiles: directory {self.directory!r} does not exist or is not a "
                "directory (relative paths start from the current working directory; pass "
                "check_dir=False if it is created later)."
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await _lifespan(receive, send)
            return
        if kind != "http":
            await send({"type": "websocket.close", "code": 1000})
            return
        if scope.get("method") not in ("GET", "HEAD"):
            await _send_error(MethodNotAllowed(allowed=["GET", "HEAD"]), scope, receive, send)
            return
        try:
            path = relative_path(scope)
            segments = _safe_segments(path, scope.get("raw_path"))
        except HTTPError as error:
            await _send_error(error, scope, receive, send)
            return
        found, full_path, st = await asyncio.to_thread(self._find, segments)
        trailing_slash = path.endswith("/")
        headers = {"cache-control": self.cache_control} if self.cache_control else None
        if found == _FILE and not trailing_slash:
            await FileResponse(full_path, headers=headers, stat_result=st)(scope, receive, send)
            return
        if found == _DIRECTORY and self.html:
            if not trailing_slash:
                await _redirect_to_slash(scope, receive, send)
                return
            found, full_path, st = await asyncio.to_thread(self._find, [*segments, "index.html"])
            if found == _FILE:
                await FileResponse(full_path, headers=headers, stat_result=st)(
                    scope, receive, send
                )
                return
        if self.html:
            found, full_path, st = await asyncio.to_thread(self._find, ["404.html"])
            if found == _FILE:
                await FileResponse(full_path, status_code=404, stat_result=st)(
                    scope, receive, send
                )
                return
        await _send_error(NotFound(), scope, receive, send)

    def _find(self, segments: list[str]) -> tuple[str, str, os.stat_result | None]:
        """Runs in a worker thread: realpath and stat touch the disk."""
        full_path = os.path.join(self.root, *segments)
        if not self.follow_symlinks:
            real = os.path.realpath(full_path)
            if real != self.root and not real.startswith(self.root.rstrip(os.sep) + os.sep):
                return _MISSING, full_path, None
        try:
            st = os.stat(full_path)
        except (OSError, ValueError):
            return _MISSING, full_path, None
        if stat.S_ISREG(st.st_mode):
            return _FILE, full_path, st
        if stat.S_ISDIR(st.st_mode):
            return _DIRECTORY, full_path, st
        return _MISSING, full_path, None  # sockets, FIFOs, devices: never served

    def __repr__(self) -> str:
        return f"StaticFiles({self.directory!r}, html={self.html!r})"


def _safe_segments(path: str, raw_path: bytes | None) -> list[str]:
    if raw_path is not None:
        if b"%00" in raw_path or b"\x00" in raw_path:
            raise BadRequest("The path contains a NUL byte.")
        if _ENCODED_SEPARATOR.search(raw_path):
            raise NotFound()
        try:
            unquote_to_bytes(raw_path).decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("The path is not valid UTF-8 once percent-decoded.") from None
    if "\x00" in path:
        raise BadRequest("The path contains a NUL byte.")
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: some servers decode bytes that way
        raise BadRequest("The path is not valid UTF-8.") from None
    segments = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == ".." or "\\" in segment or _DRIVE.match(segment):
            raise NotFound()
        if os.name == "nt" and ":" in segment:  # pragma: no cover - alternate data streams
            raise NotFound()
        segments.append(segment)
    return segments


async def _redirect_to_slash(scope: Scope, receive: Receive, send: Send) -> None:
    # A relative Location (the last segment plus "/") keeps working behind any proxy
    # prefix; the raw form of the segment keeps the client's own percent-encoding.
    raw = scope.get("raw_path")
    if raw is not None:
        last = raw.decode("latin-1").rstrip("/").rsplit("/", 1)[-1]
    else:
        full = scope.get("root_path", "") + scope.get("path", "")
        last = quote(full.rstrip("/").rsplit("/", 1)[-1])
    location = f"./{last}/" if ":" in last or not last else f"{last}/"
    query = scope.get("query_string", b"")
    if query:
        location += "?" + query.decode("latin-1")
    await RedirectResponse(location, status_code=307)(scope, receive, send)


async def _send_error(error: HTTPError, scope: Scope, receive: Receive, send: Send) -> None:
    await ProblemResponse.from_error(error)(scope, receive, send)


async def _lifespan(receive: Receive, send: Send) -> None:
    # Served on its own (``uvicorn module:static_app``), a StaticFiles has nothing to set up.
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
