"""Fuzz targets for the pure-Python parsers on the request path: each takes any bytes, feeds
them to one parser and checks what it promises (only the documented error, values of the
documented shape, agreement with the standard library where Joey says it follows it).

``make fuzz`` runs each under atheris, coverage-guided (tests/fuzz/atheris_run.py);
``make test`` runs each over Hypothesis-drawn bytes and the seeds below
(tests/fuzz/test_parsers.py). A target fails by raising: ``AssertionError`` for a broken
promise, anything else for an error the parser should have turned into its own.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qsl, unquote

import msgspec

from joey import App, HTTPError
from joey._engine.debugpage import prefers_html
from joey._json import decode_json
from joey.caching.conditional import entity_tags, http_date
from joey.datastructures import URL, Headers, parse_cookies, parse_query_string, split_host
from joey.files import _if_range_holds, _parse_ranges
from joey.forms import FormLimits, parse_form
from joey.middleware.compression import CompressionMiddleware, _negotiate
from joey.middleware.csrf import _multipart_field
from joey.params.extract import is_json_media_type
from joey.paths import BadPath, routing_path
from joey.requests import Request, host_header
from joey.security import APIKeyCookie, HTTPBasic, HTTPBearer
from joey.staticfiles import _safe_segments
from joey.uploads import UploadFile

Target = Callable[[bytes], None]
TARGETS: dict[str, Target] = {}
#: Inputs every run starts from (atheris' first corpus, Hypothesis' explicit examples).
SEEDS: dict[str, list[bytes]] = {}

# One loop for the async parsers, reused: a loop per input would cost more than the parse.
_LOOP = asyncio.new_event_loop()
_APP = App()
_CODECS = CompressionMiddleware(_APP, minimum_size=0)._codecs


def target(*seeds: bytes) -> Callable[[Target], Target]:
    def register(func: Target) -> Target:
        TARGETS[func.__name__] = func
        SEEDS[func.__name__] = list(seeds)
        return func
    return register


def _split(data: bytes, parts: int) -> list[bytes]:
    """``data`` cut at its first ``parts - 1`` newlines (structured input from flat bytes)."""
    pieces = data.split(b"\n", parts - 1)
    return pieces + [b""] * (parts - len(pieces))


def _request(headers: list[tuple[bytes, bytes]], body: bytes = b"",
             query: bytes = b"") -> Request:
    scope = {"type": "http", "method": "POST", "path": "/", "raw_path": b"/",
             "query_string": query, "headers": headers, "scheme": "http",
             "server": ("testserver", 80), "root_path": ""}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, receive, _APP, {}, None)


@target(b"a=1&b=2", b"?a=%zz&b", b"a+b=%C3%A9&&c", b"%ff=1", b"=", b";a=1")
def query_string(data: bytes) -> None:
    """Only a 400 for text that is not UTF-8; otherwise what ``parse_qsl`` gives, but for the
    two documented differences (one leading ``?`` dropped, no replacement characters)."""
    try:
        pairs = parse_query_string(data)
    except HTTPError as exc:
        assert exc.status_code == 400
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in pairs)
    if data.isascii():
        text = data.decode("ascii").removeprefix("?")
        expected = parse_qsl(text, keep_blank_values=True, encoding="utf-8",
                             errors="surrogateescape")
        assert pairs == expected, (pairs, expected)


@target(b"a=1; b=2", b'sid="x"; sid=y', b"=x; ;a", "csrftoken=abc.\u00e9".encode())
def cookies(data: bytes) -> None:
    found = parse_cookies(data.decode("latin-1"))
    for name, value in found.items():
        assert name and name == name.strip() and ";" not in name and "=" not in name
        assert ";" not in value


@target(b"\x00\x00\x01\x00\x05bytes=0-10", b"\x00\x00\x00\x10\x02bytes=-5, 3-",
        b"\x00\x00\x00\x00\x05bytes=0-", b"\x00\x00\x01\x00\x05bytes=9-1")
def ranges(data: bytes) -> None:
    """Sorted, disjoint, non-adjacent ranges inside the file, never more bytes than it has;
    or ``None`` (ignore the header)."""
    if len(data) < 5:
        return
    size, max_ranges = struct.unpack(">IB", data[:5])
    found = _parse_ranges(data[5:].decode("latin-1"), size, max_ranges)
    if found is None:
        return
    assert len(found) <= max(max_ranges, 1)
    end = -1
    for start, stop in found:
        assert 0 <= start < stop <= size, found
        assert start > end, found  # sorted, and merged when they touch
        end = stop
    assert sum(stop - start for start, stop in found) <= size


@target(b"example.com:8000", b"[::1]:80", b"a@b", b"h:99999", b"x\ny", b"\xc2\xb2")
def host(data: bytes) -> None:
    """A host Joey puts in a URL never carries a path, credentials or another authority."""
    text = data.decode("latin-1")
    found = split_host(text)
    if found is not None:
        name, port = found
        assert port is None or 0 <= port <= 65535
        assert not any(c in name for c in "/?#@ \\\r\n\t")
    url = URL.from_scope({"scheme": "http", "server": ("testserver", 80), "path": "/p",
                          "query_string": b""}, text)
    netloc = str(url).removeprefix("http://").removesuffix("/p")
    assert not any(c in netloc for c in "/?#@ \\"), netloc
    headers = [(b"host", part) for part in data.split(b"\n")]
    try:
        assert host_header(headers) == headers[0][1]
    except HTTPError as exc:
        assert exc.status_code == 400 and len(headers) > 1


@target(b"/a/b", b"/a%2Fb/c", b"/%ff", b"@admin", b"/root/x\n/root", b"/a/../b", b"//x")
def paths(data: bytes) -> None:
    """Routing paths and static-file segments: only their own errors, and never a segment
    that climbs out of a directory."""
    raw, root = _split(data, 2)
    path = unquote(raw.decode("latin-1"))
    scope = {"path": path, "raw_path": raw, "root_path": unquote(root.decode("latin-1"))}
    try:
        routed, segments = routing_path(scope)
        assert routed.startswith("/")
        assert segments is None or all(isinstance(s, str) for s in segments)
    except BadPath:
        pass
    try:
        safe = _safe_segments(path, raw)
    except HTTPError as exc:
        assert exc.status_code in (400, 404)
        return
    for segment in safe:
        assert segment not in ("", ".", "..") and "\\" not in segment and "\x00" not in segment


async def _chunks(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start:start + size]


async def _parse_form(content_type: str, body: bytes, size: int) -> None:
    limits = FormLimits(max_fields=20, max_files=5, max_field_size=4096,
                        max_part_size=8192, max_total_size=65536, max_header_size=1024,
                        spool_max_size=1024)
    try:
        form = await parse_form(content_type, _chunks(body, size), limits)
    except HTTPError as exc:
        assert exc.status_code in (400, 413, 415), exc
        return
    async with form:
        for name, value in form.multi_items():
            assert isinstance(name, str)
            if isinstance(value, UploadFile):
                assert value.size == len(await value.read())
            else:
                assert isinstance(value, str)


@target(b"application/x-www-form-urlencoded\n\x07a=1&b=%zz&c",
        b"multipart/form-data; boundary=b\n\x10--b\r\nContent-Disposition: form-data; "
        b'name="a"\r\n\r\n1\r\n--b\r\nContent-Disposition: form-data; name="f"; '
        b'filename="x.txt"\r\nContent-Type: text/plain\r\n\r\ndata\r\n--b--\r\n',
        b"multipart/form-data; boundary=\n\x01--", b"text/plain\n\x01x")
def forms(data: bytes) -> None:
    """urlencoded and multipart bodies, cut into chunks of any size: only a 400, 413 or 415,
    and every value a str or an UploadFile whose size is what it holds."""
    content_type, rest = _split(data, 2)
    size = rest[0] if rest else 1
    _LOOP.run_until_complete(_parse_form(content_type.decode("latin-1"), rest[1:],
                                         max(size, 1)))


@target(b"multipart/form-data; boundary=b\n--b\r\nContent-Disposition: form-data; "
        b'name="csrf_token"\r\n\r\nt.s\r\n--b--\r\n', b"multipart/form-data; boundary=\n")
def csrf_form_field(data: bytes) -> None:
    content_type, body = _split(data, 2)
    found = _multipart_field(body, content_type.decode("latin-1"), "csrf_token")
    assert found is None or isinstance(found, str)


@target(b"gzip, br;q=0.5", b"*;q=0, identity", b"gzip;q=x", b"br;q=1e999", b"x-gzip;q=nan")
def accept_encoding(data: bytes) -> None:
    """A coding the client accepts, or identity."""
    chosen = _negotiate(data, _CODECS)
    if chosen is not None:
        assert chosen in _CODECS


@target(b"text/html,application/json;q=0.9", b"text/html;q=nan", b"application/json; charset=x",
        b"application/vnd.api+json")
def media_types(data: bytes) -> None:
    """Accept (the debug page's choice) and Content-Type (is it JSON?) headers."""
    assert prefers_html(_request([(b"accept", data)])) in (True, False)
    assert is_json_media_type(data.decode("latin-1")) in (True, False)


@target(b'"a", W/"b"', b"*", b"Mon, 01 Jan 2024 00:00:00 GMT", b'W/"x', b"\xff",
        b"Mon, 01 Jan 2027" + b"7" * 30 + b" 00:00:00 GMT")  # a year too large: was a 500
def conditional_headers(data: bytes) -> None:
    text = data.decode("latin-1")
    tags = entity_tags(text)
    assert tags is None or all(isinstance(tag, str) for tag in tags)
    stamp = http_date(text)
    assert stamp is None or isinstance(stamp, int)
    assert _if_range_holds(text, '"etag"', "Mon, 01 Jan 2024 00:00:00 GMT") in (True, False)


@target(b"text/plain; charset=latin-1\nabc", b"text/plain; charset=nope\nx",
        b"text/plain; charset=utf-16\n\xff", b'text/plain; charset="utf-8"\n\xc3',
        b"; charset=\xc3\xbf*i\x00\x00t\x00oqnx", b"; charset=undefined\nx")  # were 500s
def body_text(data: bytes) -> None:
    """``request.text()``: the charset of the Content-Type, or a 400."""
    content_type, body = _split(data, 2)
    try:
        text = _LOOP.run_until_complete(_request([(b"content-type", content_type)],
                                                 body).text())
        assert isinstance(text, str)
    except HTTPError as exc:
        assert exc.status_code == 400


@target(b"[1, {\"a\": null}]", b"[" * 5000, b"{\"a\":" * 3000 + b"1" + b"}" * 3000, b"\xff")
def json(data: bytes) -> None:
    """Untyped JSON from outside: a value, or a DecodeError (too deep is one too)."""
    with contextlib.suppress(msgspec.DecodeError):
        decode_json(data)


_BEARER, _BASIC, _KEY = HTTPBearer(), HTTPBasic(), APIKeyCookie("key")


@target(b"Bearer abc", b"Basic " + base64.b64encode(b"ann:s\xc3\xa9same"), b"Bearer a b",
        b"basic !!", b"Bearer \xff", b"Basic \xc3\xa9")  # the last was a 500
def credentials(data: bytes) -> None:
    """The schemes read an Authorization header (and a cookie): credentials, or a 401."""
    request = _request([(b"authorization", data), (b"cookie", b"key=" + data)])
    for scheme in (_BEARER, _BASIC, _KEY):
        try:
            _LOOP.run_until_complete(scheme(request))
        except HTTPError as exc:
            assert exc.status_code == 401, exc


@target(b"Host: a\nhost: b", b"X: 1\nx: 2\nY:")
def headers(data: bytes) -> None:
    raw = [tuple(line.split(b":", 1)) if b":" in line else (line, b"")
           for line in data.split(b"\n")]
    parsed = Headers([(name.strip().lower(), value.strip()) for name, value in raw])
    for name in parsed:
        assert parsed.getlist(name) and parsed[name] == parsed.getlist(name)[0]
