from __future__ import annotations

import gzip
import os
import time
import zlib
from collections.abc import Callable

import httpx
import pytest

from joey.middleware import DEFAULT_EXCLUDED_MEDIA_TYPES, CompressionMiddleware
from joey.middleware.compression import available_encodings
from joey.types import Message, Receive, Scope, Send

from .helpers import client, drive, header, http_scope, serve, stream_app, text_app

BIG = b"joey compresses this line nicely. " * 100
HAS_BR = "br" in available_encodings()
HAS_ZSTD = "zstd" in available_encodings()


def decoders() -> dict[str, Callable[[bytes], bytes]]:
    result: dict[str, Callable[[bytes], bytes]] = {"gzip": gzip.decompress}
    if HAS_BR:
        import brotli  # type: ignore[import-untyped]

        result["br"] = brotli.decompress
    if HAS_ZSTD:
        import zstandard

        result["zstd"] = lambda data: zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return result


async def one(app: CompressionMiddleware, accept: str | None, method: str = "GET") -> list[Message]:
    headers = [(b"host", b"testserver")]
    if accept is not None:
        headers.append((b"accept-encoding", accept.encode()))
    return await drive(app, http_scope(method, headers=headers))


def gz(**options: object) -> CompressionMiddleware:
    return CompressionMiddleware(text_app(BIG), encodings=["gzip"], **options)  # type: ignore[arg-type]


async def test_gzip_whole_body_with_fixed_length_and_vary() -> None:
    app = CompressionMiddleware(
        text_app(BIG, headers=[("content-type", "text/plain"), ("vary", "Cookie")]),
        encodings=["gzip"],
    )
    async with client(app) as c:
        r = await c.get("/", headers={"accept-encoding": "gzip"})
    assert r.headers["content-encoding"] == "gzip"
    assert r.content == BIG  # httpx decoded it
    assert int(r.headers["content-length"]) < len(BIG) // 5
    assert r.headers["vary"] == "Cookie, Accept-Encoding"


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
async def test_each_available_coding_roundtrips(coding: str) -> None:
    if coding not in available_encodings():
        pytest.skip(f"{coding} support not installed")
    start, body = await one(CompressionMiddleware(text_app(BIG)), coding)
    assert header(start, b"content-encoding") == coding.encode()
    assert header(start, b"content-length") == str(len(body["body"])).encode()
    assert decoders()[coding](body["body"]) == BIG


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("gzip", "gzip"),
        ("gzip, deflate, br, zstd", "br" if HAS_BR else ("zstd" if HAS_ZSTD else "gzip")),
        ("br;q=0.5, gzip;q=0.8", "gzip"),
        ("gzip;q=0, br", "br" if HAS_BR else None),
        ("*", available_encodings()[0]),
        ("*;q=0.5, gzip;q=1", "gzip"),
        ("*;q=0", None),
        ("gzip;q=0", None),
        ("identity", None),
        ("identity;q=1, gzip;q=0.5", None),
        ("identity;q=0.5, gzip", "gzip"),
        ("GZIP;Q=0.3", "gzip"),
        ("x-gzip", "gzip"),
        ("gzip;q=abc", None),
        ("gzip;q=2", "gzip"),
        ("deflate, compress", None),
        (" , ;q=1, gzip", "gzip"),
    ],
)
def test_accept_encoding_negotiation(accept: str, expected: str | None) -> None:
    codec = CompressionMiddleware(text_app()).choose(accept.encode())
    assert (codec.name if codec else None) == expected


async def test_no_accept_encoding_sends_identity_but_still_varies() -> None:
    start, body = await one(gz(), None)
    assert header(start, b"content-encoding") is None
    assert header(start, b"vary") == b"Accept-Encoding"
    assert body["body"] == BIG


async def test_small_body_is_left_alone_and_does_not_vary() -> None:
    start, body = await one(CompressionMiddleware(text_app(b"tiny")), "gzip")
    assert header(start, b"content-encoding") is None and header(start, b"vary") is None
    assert body["body"] == b"tiny"


async def test_small_body_without_content_length_is_sent_as_is() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"tiny"})

    start, body = await one(CompressionMiddleware(app), "gzip")
    assert header(start, b"content-encoding") is None
    assert body["body"] == b"tiny"


async def test_incompressible_body_is_sent_as_is() -> None:
    noise = os.urandom(4000)
    app = CompressionMiddleware(text_app(noise, headers=[("content-type", "text/plain")]))
    start, body = await one(app, "gzip")
    assert header(start, b"content-encoding") is None
    assert header(start, b"content-length") == b"4000"
    assert body["body"] == noise


@pytest.mark.parametrize(
    "headers",
    [
        [("content-type", "image/png")],
        [("content-type", "video/mp4")],
        [("content-type", "application/zip")],
        [("content-type", "text/plain"), ("content-encoding", "br")],
        [("content-type", "text/plain"), ("cache-control", "public, no-transform")],
    ],
    ids=["image", "video-family", "zip", "already-encoded", "no-transform"],
)
async def test_skipped_responses_are_untouched(headers: list[tuple[str, str]]) -> None:
    start, body = await one(CompressionMiddleware(text_app(BIG, headers=headers)), "gzip")
    assert header(start, b"content-encoding") in (None, b"br")
    assert header(start, b"vary") is None
    assert body["body"] == BIG


async def test_svg_is_compressed_and_exclusions_are_configurable() -> None:
    svg = CompressionMiddleware(text_app(BIG, headers=[("content-type", "image/svg+xml")]))
    start, _ = await one(svg, "gzip")
    assert header(start, b"content-encoding") == b"gzip"
    json_app = CompressionMiddleware(
        text_app(BIG, headers=[("content-type", "application/json")]),
        exclude_media_types=DEFAULT_EXCLUDED_MEDIA_TYPES | {"application/json"},
    )
    start, _ = await one(json_app, "gzip")
    assert header(start, b"content-encoding") is None


@pytest.mark.parametrize("status", [204, 304, 206, 101])
async def test_statuses_without_compressible_body(status: int) -> None:
    start, _ = await one(CompressionMiddleware(text_app(BIG, status=status)), "gzip")
    assert header(start, b"content-encoding") is None


async def test_head_is_passed_through() -> None:
    start, _ = await one(CompressionMiddleware(text_app(BIG)), "gzip", method="HEAD")
    assert header(start, b"content-encoding") is None
    assert header(start, b"content-length") == str(len(BIG)).encode()


async def test_strong_etag_becomes_weak_and_ranges_are_dropped() -> None:
    app = CompressionMiddleware(text_app(BIG, headers=[
        ("content-type", "text/plain"), ("etag", '"v1"'), ("accept-ranges", "bytes")]))
    start, _ = await one(app, "gzip")
    assert header(start, b"etag") == b'W/"v1"'
    assert header(start, b"accept-ranges") is None


async def test_stream_is_compressed_chunk_by_chunk_and_each_chunk_is_decodable() -> None:
    chunks = [b"data: %d\n\n" % i for i in range(5)]
    app = CompressionMiddleware(stream_app(chunks), encodings=["gzip"])
    start, *bodies = await one(app, "gzip")
    assert header(start, b"content-encoding") == b"gzip"
    assert header(start, b"content-length") is None
    decoder = zlib.decompressobj(31)
    # Every chunk is flushed: decoding what arrived so far gives exactly the chunk sent.
    for chunk, message in zip(chunks, bodies, strict=False):
        assert message["more_body"] is True
        assert decoder.decompress(message["body"]) == chunk
    assert bodies[-1]["more_body"] is False
    decoder.decompress(bodies[-1]["body"])
    assert decoder.eof


@pytest.mark.parametrize("coding", ["br", "zstd"])
async def test_stream_flushes_with_optional_codings(coding: str) -> None:
    if coding not in available_encodings():
        pytest.skip(f"{coding} support not installed")
    chunks = [b"event %d\n" % i for i in range(3)]
    start, *bodies = await one(CompressionMiddleware(stream_app(chunks)), coding)
    assert header(start, b"content-encoding") == coding.encode()
    if coding == "br":
        import brotli

        decompressor = brotli.Decompressor()
        step = decompressor.process
    else:
        import zstandard

        step = zstandard.ZstdDecompressor().decompressobj().decompress
    for chunk, message in zip(chunks, bodies, strict=False):
        assert step(message["body"]) == chunk


async def test_small_stream_with_declared_length_is_not_compressed() -> None:
    app = CompressionMiddleware(stream_app([b"a", b"b"], headers=[(b"content-length", b"2")]))
    start, *bodies = await one(app, "gzip")
    assert header(start, b"content-encoding") is None
    assert b"".join(m["body"] for m in bodies) == b"ab"


async def test_websocket_and_lifespan_pass_through() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    middleware = CompressionMiddleware(app)
    await drive(middleware, http_scope(kind="websocket"))
    await drive(middleware, {"type": "lifespan"})
    assert seen == ["websocket", "lifespan"]


def test_unknown_coding_is_refused() -> None:
    with pytest.raises(ValueError, match="deflate"):
        CompressionMiddleware(text_app(), encodings=["deflate"])


def test_negotiation_cache_is_bounded() -> None:
    middleware = CompressionMiddleware(text_app())
    for i in range(600):
        middleware.choose(b"gzip;q=0.%d" % (i % 10) + b", x%d" % i)
    assert len(middleware._cache) <= 256


async def test_server_sent_events_arrive_promptly_over_a_real_server() -> None:
    events = [b"data: first\n\n", b"data: second\n\n"]
    app = CompressionMiddleware(stream_app(events, delay=1.0), minimum_size=1)
    with serve(app) as url:
        async with httpx.AsyncClient() as http:
            started = time.monotonic()
            headers = {"accept-encoding": "gzip"}
            async with http.stream("GET", url + "/", headers=headers) as response:
                assert response.headers["content-encoding"] == "gzip"
                arrivals: list[tuple[float, bytes]] = []
                async for data in response.aiter_bytes():
                    if data:
                        arrivals.append((time.monotonic() - started, data))
    assert b"".join(data for _, data in arrivals) == b"".join(events)
    # The first event was decodable long before the producer's 1 s pause ended.
    assert arrivals[0][1] == events[0]
    assert arrivals[0][0] < 0.8


async def test_other_messages_pass_through_in_every_state() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.debug"})  # before the start
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if scope["path"] == "/pathsend":  # the ASGI path-send extension instead of a body
            await send({"type": "http.response.pathsend", "path": "/tmp/file"})
            return
        await send({"type": "http.response.body", "body": BIG, "more_body": True})
        await send({"type": "http.response.trailers", "headers": [], "more_trailers": False})
        await send({"type": "http.response.body", "body": b""})

    middleware = CompressionMiddleware(app, encodings=["gzip"])
    headers = [(b"accept-encoding", b"gzip")]
    sent = await drive(middleware, http_scope(path="/pathsend", headers=headers))
    assert [m["type"] for m in sent] == [
        "http.response.debug", "http.response.start", "http.response.pathsend"]
    assert header(sent[1], b"content-encoding") is None
    sent = await drive(middleware, http_scope(headers=headers))
    assert [m["type"] for m in sent] == [
        "http.response.debug", "http.response.start", "http.response.body",
        "http.response.trailers", "http.response.body"]
    assert header(sent[1], b"content-encoding") == b"gzip"


def test_optional_codings_are_optional(monkeypatch: pytest.MonkeyPatch) -> None:
    from joey.middleware import compression

    assert compression._optional("joey_no_such_module") is None
    monkeypatch.setattr(compression, "_brotli", None)
    monkeypatch.setattr(compression, "_zstd", None)
    assert available_encodings() == ("gzip",)
    with pytest.raises(ValueError, match="install the 'brotli' package"):
        CompressionMiddleware(text_app(), encodings=["br"])
    codec = CompressionMiddleware(text_app()).choose(b"br, zstd, gzip;q=0.1")
    assert codec is not None and codec.name == "gzip"
