"""Response compression: gzip always, brotli and zstd when their packages are installed.

The coding is negotiated from ``Accept-Encoding`` (RFC 9110 section 12.5.3): the highest q-value
wins, ``q=0`` forbids a coding, ``*`` stands for every coding not named, and ties go to the
server's order (brotli, zstd, gzip by default). A client that rates ``identity`` above every
coding we have gets the body uncompressed.

What is never compressed: ``HEAD`` answers, 1xx/204/304 and 206 answers, bodies that already
have a ``Content-Encoding``, answers marked ``Cache-Control: no-transform``, media types that
are compressed already (images, video, archives; see :data:`DEFAULT_EXCLUDED_MEDIA_TYPES`) and
bodies smaller than ``minimum_size``.

A body sent in one message is compressed in one go and gets a correct ``Content-Length``. A
streamed body is compressed chunk by chunk, each chunk flushed to the client at once (so
server-sent events keep arriving as they are produced), without ``Content-Length``.
"""

from __future__ import annotations

import importlib
import zlib
from collections.abc import Callable, Collection, Sequence
from typing import Any

from joey.middleware._common import RawHeaders, get_header, merge_vary, raw_headers
from joey.types import ASGIApp, Message, Receive, Scope, Send


def _optional(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


# Imported as ``Any`` so the module type-checks whether or not the extras are installed.
_brotli: Any = _optional("brotli")
_zstd: Any = _optional("zstandard")

#: Media types that are compressed already; a trailing ``/*`` matches a whole family.
DEFAULT_EXCLUDED_MEDIA_TYPES: frozenset[str] = frozenset({
    "image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/heic",
    "image/heif", "image/jxl", "video/*", "audio/*", "font/woff", "font/woff2",
    "application/zip", "application/gzip", "application/x-gzip", "application/zstd",
    "application/x-bzip2", "application/x-xz", "application/x-7z-compressed",
    "application/x-rar-compressed", "application/vnd.rar", "application/br",
})

_NO_BODY_STATUSES = frozenset({204, 205, 304})


class _Codec:
    """One content coding: how to compress a whole body, and how to start a stream."""

    __slots__ = ("name", "one_shot", "stream")

    def __init__(
        self, name: str, one_shot: Callable[[bytes], bytes], stream: Callable[[], _Stream]
    ) -> None:
        self.name = name
        self.one_shot = one_shot
        self.stream = stream


class _Stream:
    """A streaming compressor: ``chunk()`` returns flushed output, ``finish()`` the trailer."""

    __slots__ = ("chunk", "finish")

    def __init__(self, chunk: Callable[[bytes], bytes], finish: Callable[[], bytes]) -> None:
        self.chunk = chunk
        self.finish = finish


def _gzip_codec(level: int) -> _Codec:
    def new() -> Any:
        # wbits=31: a gzip header and trailer around the deflate stream.
        return zlib.compressobj(level, zlib.DEFLATED, 31)

    def one_shot(body: bytes) -> bytes:
        compressor = new()
        return bytes(compressor.compress(body) + compressor.flush())

    def stream() -> _Stream:
        compressor = new()
        return _Stream(
            lambda data: compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH),
            compressor.flush,
        )

    return _Codec("gzip", one_shot, stream)


def _brotli_codec(quality: int) -> _Codec:
    def one_shot(body: bytes) -> bytes:
        return bytes(_brotli.compress(body, quality=quality))

    def stream() -> _Stream:
        compressor = _brotli.Compressor(quality=quality)
        return _Stream(
            lambda data: compressor.process(data) + compressor.flush(), compressor.finish
        )

    return _Codec("br", one_shot, stream)


def _zstd_codec(level: int) -> _Codec:
    # One ZstdCompressor per middleware: its one-shot compress() is thread-safe enough for
    # asyncio (one call at a time) and writes the content size into the frame.
    compressor = _zstd.ZstdCompressor(level=level)

    def one_shot(body: bytes) -> bytes:
        return bytes(compressor.compress(body))

    def stream() -> _Stream:
        streamer = _zstd.ZstdCompressor(level=level).compressobj()
        block = _zstd.COMPRESSOBJ_FLUSH_BLOCK
        return _Stream(
            lambda data: streamer.compress(data) + streamer.flush(block), streamer.flush
        )

    return _Codec("zstd", one_shot, stream)


def available_encodings() -> tuple[str, ...]:
    """The codings this installation can produce, in the default preference order."""
    names = []
    if _brotli is not None:
        names.append("br")
    if _zstd is not None:
        names.append("zstd")
    names.append("gzip")
    return tuple(names)


class CompressionMiddleware:
    """Compress response bodies with the best coding the client accepts.

    Example::

        asgi_app = CompressionMiddleware(app, minimum_size=1024)

        # only gzip, and also leave PDFs alone:
        asgi_app = CompressionMiddleware(
            app,
            encodings=["gzip"],
            exclude_media_types=DEFAULT_EXCLUDED_MEDIA_TYPES | {"application/pdf"},
        )
    """

    __slots__ = (
        "_app",
        "_cache",
        "_codecs",
        "_excluded_exact",
        "_excluded_families",
        "_minimum_size",
    )

    def __init__(
        self,
        app: ASGIApp,
        *,
        minimum_size: int = 500,
        encodings: Sequence[str] | None = None,
        exclude_media_types: Collection[str] = DEFAULT_EXCLUDED_MEDIA_TYPES,
        gzip_level: int = 6,
        brotli_quality: int = 4,
        zstd_level: int = 3,
    ) -> None:
        self._app = app
        self._minimum_size = minimum_size
        factories: dict[str, Callable[[], _Codec]] = {"gzip": lambda: _gzip_codec(gzip_level)}
        if _brotli is not None:
            factories["br"] = lambda: _brotli_codec(brotli_quality)
        if _zstd is not None:
            factories["zstd"] = lambda: _zstd_codec(zstd_level)
        wanted = available_encodings() if encodings is None else tuple(encodings)
        for name in wanted:
            if name not in factories:
                extra = {"br": "brotli", "zstd": "zstandard"}.get(name)
                hint = f"; install the {extra!r} package" if extra else ""
                raise ValueError(f"Cannot compress with {name!r}{hint}")
        # Server preference order: first is best when the client rates several equally.
        self._codecs = tuple(factories[name]() for name in wanted)
        types = [media.lower() for media in exclude_media_types]
        self._excluded_exact = frozenset(t for t in types if not t.endswith("/*"))
        self._excluded_families = tuple(t[:-1] for t in types if t.endswith("/*"))
        # perf: browsers send a handful of distinct Accept-Encoding values; remembering the
        # choice skips re-parsing on nearly every request. Bounded, and per instance.
        self._cache: dict[bytes, _Codec | None] = {}

    def choose(self, accept_encoding: bytes) -> _Codec | None:
        """The coding to use for this ``Accept-Encoding`` value, or None for identity."""
        cache = self._cache
        try:
            return cache[accept_encoding]
        except KeyError:
            pass
        codec = _negotiate(accept_encoding, self._codecs)
        if len(cache) >= 256:
            cache.clear()
        cache[accept_encoding] = codec
        return codec

    def _compressible(self, headers: RawHeaders) -> bool:
        content_type = get_header(headers, b"content-type")
        if content_type is None:
            return True
        media = content_type.split(b";", 1)[0].strip().lower().decode("latin-1")
        return media not in self._excluded_exact and not media.startswith(
            self._excluded_families
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "HEAD":
            await self._app(scope, receive, send)
            return
        accept: bytes = b""
        for name, value in scope["headers"]:
            if name == b"accept-encoding":
                accept = value if not accept else accept + b"," + value
        codec = self.choose(accept) if accept else None
        await self._app(scope, receive, _Responder(self, codec, send))


class _Responder:
    """The per-request ``send``: holds back the response start until it knows the body size.

    States: ``start`` (waiting for http.response.start) -> ``first`` (start held back, waiting
    for the first body message) -> ``passthrough`` or ``streaming`` (the rest of the body).
    """

    __slots__ = ("_codec", "_middleware", "_send", "_start", "_state", "_stream")

    def __init__(self, middleware: CompressionMiddleware, codec: _Codec | None, send: Send):
        self._middleware = middleware
        self._codec = codec
        self._send = send
        self._start: Message | None = None
        self._state = "start"
        self._stream: _Stream | None = None

    async def __call__(self, message: Message) -> None:
        state = self._state
        if state == "passthrough":
            await self._send(message)
        elif state == "streaming":
            await self._stream_body(message)
        elif state == "start":
            await self._on_start(message)
        else:
            await self._on_first_body(message)

    async def _on_start(self, message: Message) -> None:
        if message["type"] != "http.response.start":
            await self._send(message)
            return
        headers = raw_headers(message.get("headers", ()))
        message["headers"] = headers
        status = message["status"]
        eligible = (
            status >= 200
            and status not in _NO_BODY_STATUSES
            and status != 206
            and get_header(headers, b"content-encoding") is None
            and b"no-transform" not in (get_header(headers, b"cache-control") or b"").lower()
            and self._middleware._compressible(headers)
        )
        if not eligible:
            self._state = "passthrough"
            await self._send(message)
            return
        length = get_header(headers, b"content-length")
        if length is not None and length.isdigit() and int(length) < self._middleware._minimum_size:
            # Too small to be worth it for any client, so it does not vary by Accept-Encoding.
            self._state = "passthrough"
            await self._send(message)
            return
        # The answer could have been compressed for another client: caches must know.
        message["headers"] = merge_vary(headers, b"Accept-Encoding")
        if self._codec is None:
            self._state = "passthrough"
            await self._send(message)
            return
        self._start = message
        self._state = "first"

    async def _on_first_body(self, message: Message) -> None:
        start = self._start
        assert start is not None
        codec = self._codec
        assert codec is not None
        if message["type"] != "http.response.body":
            self._state = "passthrough"
            await self._send(start)
            await self._send(message)
            return
        body: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        headers: RawHeaders = start["headers"]
        if not more:
            self._state = "passthrough"
            small = len(body) < self._middleware._minimum_size
            compressed = b"" if small else codec.one_shot(body)
            if small or len(compressed) >= len(body):
                await self._send(start)  # not worth it: send as is, Vary already set
                await self._send(message)
                return
            start["headers"] = _encoded_headers(headers, codec.name, len(compressed))
            message["body"] = compressed
            await self._send(start)
            await self._send(message)
            return
        # A streamed body: compress chunk by chunk, with no Content-Length.
        self._state = "streaming"
        self._stream = codec.stream()
        start["headers"] = _encoded_headers(headers, codec.name, None)
        await self._send(start)
        await self._stream_body(message)

    async def _stream_body(self, message: Message) -> None:
        stream = self._stream
        assert stream is not None
        if message["type"] != "http.response.body":
            await self._send(message)
            return
        body: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        data = stream.chunk(body) if body else b""
        if not more:
            data += stream.finish()
            self._state = "passthrough"
        if data or not more:
            await self._send({"type": "http.response.body", "body": data, "more_body": more})


def _encoded_headers(headers: RawHeaders, coding: str, length: int | None) -> RawHeaders:
    out: RawHeaders = []
    for name, value in headers:
        lowered = name.lower()
        if lowered in (b"content-length", b"accept-ranges"):
            continue  # ranges and lengths would refer to the uncompressed bytes
        if lowered == b"etag" and not value.startswith(b"W/"):
            # A strong ETag names exact bytes; the compressed body is different bytes.
            value = b"W/" + value
        out.append((name, value))
    out.append((b"content-encoding", coding.encode("ascii")))
    if length is not None:
        out.append((b"content-length", str(length).encode("ascii")))
    return out


def _negotiate(accept_encoding: bytes, codecs: Sequence[_Codec]) -> _Codec | None:
    """Pick a coding for an ``Accept-Encoding`` value (RFC 9110 section 12.5.3)."""
    ratings: dict[str, float] = {}
    for item in accept_encoding.decode("latin-1").split(","):
        coding, _, params = item.partition(";")
        coding = coding.strip().lower()
        if not coding:
            continue
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = 0.0  # a garbled q-value: do not guess the client means yes
                break
        if coding == "x-gzip":  # RFC 9110: an alias of gzip
            coding = "gzip"
        ratings[coding] = max(ratings.get(coding, 0.0), min(max(quality, 0.0), 1.0))
    wildcard = ratings.get("*")
    best: _Codec | None = None
    best_q = 0.0
    for codec in codecs:  # preference order: a later coding must be strictly better
        quality = ratings.get(codec.name, wildcard if wildcard is not None else 0.0)
        if quality > best_q:
            best, best_q = codec, quality
    if best is None:
        return None
    # identity is always acceptable unless refused; it only wins when rated strictly higher.
    identity = ratings.get("identity", wildcard)
    if identity is not None and identity > best_q:
        return None
    return best


__all__ = [
    "DEFAULT_EXCLUDED_MEDIA_TYPES",
    "CompressionMiddleware",
    "available_encodings",
]
