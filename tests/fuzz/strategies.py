"""Hypothesis strategies for hostile HTTP requests and WebSocket sessions against
:mod:`tests.fuzz.app`.

A request is drawn as a route of the app (so the parsers behind it are reached) and then made
hostile: any byte in the path and header values, random percent-encodings, duplicated headers
(Host included), JSON of random type and depth (up to 100,000 levels), wrong content types,
truncated and oversized bodies, non-ASCII cookies. Large inputs are built from small draws (a
depth, a repeat count), so that Hypothesis stays fast and shrinks them well.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any

from hypothesis import strategies as st

from tests.fuzz.app import csrf_tokens, issue_jwt

SERVER_HOST = "testserver"


@dataclasses.dataclass
class RawRequest:
    """One HTTP/1.1 request as bytes on the wire would carry it.

    ``chunks`` splits the body into ASGI messages (the sizes of all but the last); with
    ``sent`` set, the client sends only that many body bytes and goes away.
    """

    method: str
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""
    chunks: list[int] = dataclasses.field(default_factory=list)
    sent: int | None = None

    @property
    def path(self) -> bytes:
        return self.target.partition(b"?")[0]

    @property
    def query(self) -> bytes:
        return self.target.partition(b"?")[2]

    def header_values(self, name: bytes) -> list[bytes]:
        return [value for key, value in self.headers if key.lower() == name]

    def body_messages(self) -> tuple[list[bytes], bool]:
        """The body as the server would hand it over, and whether the client went away."""
        body = self.body if self.sent is None else self.body[:self.sent]
        pieces, rest = [], body
        for size in self.chunks:
            if not rest:
                break
            pieces.append(rest[:size])
            rest = rest[size:]
        pieces.append(rest)
        return pieces, self.sent is not None

    def wire(self) -> bytes:
        """The request as an HTTP/1.1 client would send it (``Connection: close`` added)."""
        head = self.method.encode("latin-1") + b" " + self.target + b" HTTP/1.1\r\n"
        head += b"".join(name + b": " + value + b"\r\n" for name, value in self.headers)
        head += b"connection: close\r\n\r\n"
        return head + (self.body if self.sent is None else self.body[:self.sent])

    def __repr__(self) -> str:  # what a failing example prints: ready to paste into @example
        body = self.body if len(self.body) <= 200 else self.body[:200] + b"..."
        return (f"RawRequest({self.method!r}, {self.target!r}, {self.headers!r}, "
                f"body={body!r} ({len(self.body)} bytes), chunks={self.chunks!r}, "
                f"sent={self.sent!r})")


@dataclasses.dataclass
class WebSocketSession:
    """A WebSocket handshake and the messages the client sends after it."""

    target: bytes
    headers: list[tuple[bytes, bytes]]
    subprotocols: list[str]
    messages: list[dict[str, Any]]
    denial_response: bool  # the server offers the websocket.http.response extension


# -- small pieces ----------------------------------------------------------------------------

ANY_BYTES = st.binary(max_size=24)
#: Text of every kind: ASCII, controls, Latin-1, the BMP, astral planes, lone surrogates.
NON_ASCII = st.text(st.characters(min_codepoint=0x80, max_codepoint=0x10FFFF), min_size=1,
                    max_size=6)
ANY_TEXT = st.text(max_size=16) | st.text(st.characters(codec="ascii"), max_size=12) | NON_ASCII


@st.composite
def text_bytes(draw: st.DrawFn, text: st.SearchStrategy[str] = ANY_TEXT) -> bytes:
    """Text as a client may encode it: UTF-8, Latin-1 where it fits, or raw bytes."""
    value = draw(text)
    how = draw(st.sampled_from(["utf-8", "latin-1", "raw"]))
    if how == "raw":
        return draw(ANY_BYTES)
    return value.encode("utf-8", "surrogatepass") if how == "utf-8" else value.encode(
        "latin-1", "replace")


def percent_encode(raw: bytes, draw: st.DrawFn, reserved: bytes = b"/?#%") -> bytes:
    """``raw`` with some bytes escaped (upper or lower case hex), reserved ones always, and
    now and then an invalid escape (``%``, ``%z``, ``%f``) slipped in."""
    mode = draw(st.sampled_from(["none", "some", "all", "needed"]))
    out = bytearray()
    for byte in raw:
        must = bytes([byte]) in reserved or byte < 0x21 or byte > 0x7E
        escape = mode == "all" or (must and mode != "none") or (
            mode == "some" and draw(st.booleans()))
        if escape:
            out += (b"%%%02X" if draw(st.booleans()) else b"%%%02x") % byte
        else:
            out.append(byte)
    if draw(st.integers(0, 9)) == 0:
        at = draw(st.integers(0, len(out)))
        out[at:at] = draw(st.sampled_from([b"%", b"%z", b"%f", b"%%", b"%2", b"%C3", b"%ff",
                                           b"%00", b"%2F", b"%2e%2e"]))
    return bytes(out)


# -- the request target -----------------------------------------------------------------------

INTS = st.integers(-(2**70), 2**70).map(str) | st.sampled_from(
    ["0", "-1", "007", "1e3", "+5", " 1", "1_000", "٣", "9" * 400])
FLOATS = st.floats(allow_nan=True, allow_infinity=True).map(repr) | st.sampled_from(
    ["nan", "inf", "-0.0", "1e999", "0x10", "1.5.5"])
UUIDS = st.uuids().map(str) | st.sampled_from(["0" * 32, "not-a-uuid", "{" + "0" * 32 + "}"])
SEGMENT = st.one_of(ANY_TEXT, INTS, FLOATS, UUIDS, st.sampled_from(
    ["", ".", "..", "...", "a/b", "a\\b", "C:", "a\x00b", "static", "index.html", "a.txt"]))

#: The app's routes as segment templates; "*" is any segment, "**" any number of them.
ROUTES: list[tuple[list[str], tuple[str, ...]]] = [
    (["p", "int", "*"], ("GET",)), (["p", "float", "*"], ("GET",)),
    (["p", "uuid", "*"], ("GET",)), (["p", "path", "**"], ("GET",)),
    (["p", "str", "*", "tail"], ("GET",)), (["q"], ("GET",)), (["q", "raw"], ("GET",)),
    (["h"], ("GET",)), (["c"], ("GET",)),
    *[(["b", kind], ("POST",)) for kind in (
        "struct", "dataclass", "typeddict", "pydantic", "union", "list", "points", "dict",
        "ints", "optional", "embedded", "embedded-pydantic", "text", "bytes", "decoder",
        "json", "stream")],
    *[(["f", kind], ("POST",)) for kind in ("fields", "whole", "file", "raw")],
    *[(["s", kind], ("GET",)) for kind in ("bearer", "basic", "keys", "optional")],
    (["s", "jwt"], ("POST",)), (["limited"], ("GET",)),
    (["r", "session"], ("GET",)), (["r", "url"], ("GET",)), (["r", "deps"], ("GET",)),
    (["csrf", "form"], ("GET", "POST")), (["csrf", "json"], ("POST",)),
    (["sse"], ("GET",)), (["sub", "*", "items", "*"], ("PUT",)),
    (["static", "**"], ("GET", "HEAD")), (["redirect", "**"], ("GET", "POST")),
]
QUERY_NAMES = ["q", "limit", "ratio", "exact", "lang", "tags", "ids", "color", "order", "key",
               "day", "at", "page-size", "api_key", "n", "nick"]
METHODS = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS",
                           "TRACE"]) | st.text(st.characters(codec="ascii",
                                                             categories=["Lu", "Ll"]),
                                               min_size=1, max_size=8)


#: Routes that put an authority in their answer (request.url, an HTTPS redirect) are drawn
#: more often: that is where a second Host header shows.
WEIGHTED_ROUTES = ROUTES + [route for route in ROUTES
                            if route[0] in (["r", "url"], ["redirect", "**"])] * 4


@st.composite
def paths(draw: st.DrawFn, area: str | None = None) -> tuple[bytes, tuple[str, ...], str]:
    """A path (raw bytes, as in the request line), the methods its route takes and the
    route's first segment (what kind of body it reads); only routes of ``area`` if given."""
    routes = WEIGHTED_ROUTES if area is None else [r for r in ROUTES if r[0][0] == area]
    if area is None and draw(st.integers(0, 9)) == 0:  # not a route at all
        return draw(st.sampled_from([b"*", b"@admin", b"evil.com/q", b"http://evil.com/q",
                                     b"//evil.com/q", b"/", b""]) | ANY_BYTES), ("GET",), ""
    template, methods = draw(st.sampled_from(routes))
    # The route's own segments stay as they are but now and then (so that the route is
    # reached); the parameters are anything, encoded any way.
    mangle_route = draw(st.integers(0, 7)) == 0
    raw_segments: list[bytes] = []
    for part in template:
        if part == "*":
            parts = [draw(SEGMENT)]
        elif part == "**":
            parts = draw(st.lists(SEGMENT | st.sampled_from(["a.txt", "sub", ""]), max_size=4))
        else:
            raw_segments.append(percent_encode(part.encode(), draw) if mangle_route
                                else part.encode())
            continue
        raw_segments += [percent_encode(p.encode("utf-8", "surrogatepass"), draw)
                         for p in parts]
    raw = b"/" + b"/".join(raw_segments)
    if draw(st.integers(0, 7)) == 0:
        raw += draw(st.sampled_from([b"/", b"//", b"/.", b"/..", b"%2F", b"/%2e%2e/q"]))
    return raw, methods, template[0]


@st.composite
def query_strings(draw: st.DrawFn) -> bytes:
    pairs = draw(st.lists(st.tuples(st.sampled_from(QUERY_NAMES) | ANY_TEXT,
                                    st.one_of(ANY_TEXT, INTS, FLOATS, UUIDS,
                                              st.sampled_from(["true", "0", "red", "asc",
                                                               "2024-02-30", "2024-01-01"]))),
                          max_size=6))
    parts = [percent_encode(k.encode("utf-8", "surrogatepass"), draw, b"&=+#%")
             + (b"" if draw(st.integers(0, 9)) == 0 else b"=")
             + percent_encode(v.encode("utf-8", "surrogatepass"), draw, b"&=+#%")
             for k, v in pairs]
    query = b"&".join(parts)
    if draw(st.integers(0, 9)) == 0:
        query = draw(st.sampled_from([b"?", b"&&", b";", b"+", b"%"])) + query
    return query


# -- headers ------------------------------------------------------------------------------------

def _basic(user: bytes, password: bytes, colon: bool) -> bytes:
    return b"Basic " + base64.b64encode(user + (b":" if colon else b"") + password)


def _jwt_shaped(header: bytes, payload: bytes) -> bytes:
    def part(raw: bytes) -> bytes:
        return base64.urlsafe_b64encode(raw).rstrip(b"=")
    return b"Bearer " + part(header) + b"." + part(payload) + b".c2ln"


CREDENTIALS = st.one_of(
    st.builds(lambda t: b"Bearer " + t, text_bytes()),
    st.builds(lambda t: b"Basic " + t, text_bytes()),
    st.builds(lambda claims: f"Bearer {issue_jwt(**claims)}".encode(),
              st.fixed_dictionaries({}, optional={
                  "scope": st.sampled_from(["write", "read", ""]) | ANY_TEXT,
                  "aud": st.sampled_from(["fuzz", "other"]), "sub": ANY_TEXT,
                  "exp": st.integers(0, 2**40), "nbf": st.integers(0, 2**40)})),
    st.builds(_jwt_shaped, st.sampled_from([b'{"alg":"HS256"}', b'{"alg":"none"}', b"[]",
                                            b'{"alg":"HS256","kid":' + b"[" * 5000 + b"]"
                                            * 5000 + b"}", b"\xff"]),
              st.sampled_from([b"{}", b'{"exp":1e999}', b"null", b"[" * 3000 + b"]" * 3000])),
    st.builds(_basic, text_bytes(), text_bytes(), st.booleans()),
    st.sampled_from([b"Bearer", b"Bearer ", b"Basic", b"Basic !!!", b"Token x", b"bearer x",
                     b"Bearer a b", b"Basic " + base64.b64encode(b"\xff\xfe:\x00")]),
    text_bytes(),
)

#: Tokens the app's CSRF middleware signed: sent as the cookie and submitted in the header or
#: the form, so that the check passes and the body behind it is read.
CSRF_TOKENS = st.sampled_from([token.encode() for token in csrf_tokens()])

#: The CSRF cookie first: its value is parsed as ``nonce.signature``.
COOKIE_NAMES = ["csrftoken", "csrftoken", "csrftoken", "session", "sid", "n", "k", "key"]


@st.composite
def cookie_headers(draw: st.DrawFn) -> bytes:
    """A Cookie header: known names, values of any text (token-shaped ones too: the CSRF
    cookie is ``nonce.signature``), any byte, quotes, stray separators."""
    pieces = []
    for _ in range(draw(st.integers(1, 4))):
        name = draw(st.sampled_from(COOKIE_NAMES).map(str.encode) | text_bytes())
        dotted = st.builds(lambda a, b: a + b"." + b, text_bytes(), text_bytes(NON_ASCII))
        value = draw(st.one_of(
            text_bytes(), dotted, dotted, CSRF_TOKENS, INTS.map(str.encode),
            UUIDS.map(str.encode),
            text_bytes().map(lambda v: b'"' + v + b'"'),
        ))
        pieces.append(name + draw(st.sampled_from([b"=", b"=", b"=", b"", b"=="])) + value)
    return draw(st.sampled_from([b"; ", b";", b", ", b"; ;"])).join(pieces)


HOSTS = st.sampled_from([b"testserver", b"127.0.0.1:8000", b"evil.example", b"[::1]:80",
                         b"a@b", b"x/y", b"h:99999", b"example.com:\xc2\xb2", b"",
                         b"EXAMPLE.com.", b"xn--caf-dma.example"]) | text_bytes()
ORIGINS = st.sampled_from([b"https://app.example", b"https://evil.example",
                           b"https://abc.example", b"null", b"http://testserver",
                           b"https://app.example/"]) | text_bytes()
CONTENT_TYPES = st.sampled_from([
    b"application/json", b"application/json; charset=utf-8", b"application/vnd.x+json",
    b"Application/JSON", b"application/json; charset=latin-1", b"text/plain",
    b"text/plain; charset=unknown-8", b"text/plain; charset=utf-16",
    b"application/x-www-form-urlencoded", b"multipart/form-data",
    b"multipart/form-data; boundary=", b"multipart/form-data; boundary=\"" + b"b" * 80 + b"\"",
    b"application/octet-stream", b"", b"application/json" * 100,
]) | text_bytes()


@st.composite
def extra_headers(draw: st.DrawFn) -> list[tuple[bytes, bytes]]:
    """Headers the app reads, with hostile values, some repeated, plus random ones."""
    choices = {
        b"x-token": text_bytes(), b"user-agent": text_bytes(),
        b"x-forwarded-for": text_bytes(), b"x-count": INTS.map(str.encode),
        b"x-flag": st.sampled_from([b"true", b"1", b"yes", b"\xff"]),
        b"x-day": st.sampled_from([b"2024-01-01", b"2024-13-01", b"x"]),
        b"x-user": text_bytes(), b"x-api-key": text_bytes(), b"x-request-id": text_bytes(),
        b"authorization": CREDENTIALS, b"cookie": cookie_headers(),
        b"origin": ORIGINS, b"sec-fetch-site": st.sampled_from([b"cross-site", b"same-site"]),
        b"x-csrf-token": text_bytes() | CSRF_TOKENS | st.builds(
            lambda a, b: a + b"." + b, text_bytes(), text_bytes()),
        b"accept-encoding": st.sampled_from([b"gzip", b"br;q=0.5, gzip;q=1.0", b"zstd",
                                             b"*;q=0", b"identity;q=1, *;q=0",
                                             b"gzip;q=x", b"br;q=1e99, gzip;q=-1"])
        | text_bytes(),
        b"accept": st.sampled_from([b"text/html", b"application/json;q=0.9, */*;q=0.1"])
        | text_bytes(),
        b"range": st.sampled_from([b"bytes=0-10", b"bytes=-5", b"bytes=5-", b"bytes=9-1",
                                   b"bytes=0-1,2-3,1-2", b"bytes=" + b"0-0," * 300,
                                   b"bytes=99999999999999999999999-", b"items=0-1"])
        | text_bytes(),
        b"if-range": text_bytes(), b"if-none-match": text_bytes(),
        b"if-match": text_bytes(), b"if-modified-since": text_bytes(),
        b"if-unmodified-since": text_bytes(), b"last-event-id": text_bytes(),
        b"access-control-request-method": st.sampled_from([b"POST", b"PUT", b"\xff"]),
        b"access-control-request-headers": text_bytes(),
        b"sec-websocket-protocol": text_bytes(),
        b"transfer-encoding": st.sampled_from([b"chunked", b"gzip", b"\xff"]),
    }
    headers = []
    for _ in range(draw(st.integers(0, 6))):
        name = draw(st.sampled_from(sorted(choices)))
        headers.append((name, draw(choices[name])))
        if draw(st.integers(0, 5)) == 0:  # the same header again
            headers.append((name, draw(choices[name])))
    if draw(st.integers(0, 5)) == 0:
        headers.append((draw(text_bytes()), draw(text_bytes())))
    return headers


# -- bodies ---------------------------------------------------------------------------------------

JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
    ANY_TEXT.map(lambda t: t.encode("utf-8", "replace").decode("utf-8")),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["name", "price", "tags", "x", "y", "title", "year", "age", "user",
                         "email", "password", "movie", "remember", "extra"]) | st.text(
            max_size=4), inner, max_size=4),
    max_leaves=12,
)
SHAPED = st.one_of(  # values close to what the typed routes want, so validation goes deep
    st.fixed_dictionaries({"name": JSON_VALUES, "price": JSON_VALUES},
                          optional={"tags": JSON_VALUES, "extra": JSON_VALUES}),
    st.fixed_dictionaries({"x": JSON_VALUES, "y": JSON_VALUES}),
    st.fixed_dictionaries({"title": JSON_VALUES, "year": JSON_VALUES}),
    st.fixed_dictionaries({"name": JSON_VALUES, "age": JSON_VALUES}),
    st.fixed_dictionaries({"user": st.fixed_dictionaries({"email": JSON_VALUES,
                                                          "password": JSON_VALUES})},
                          optional={"movie": JSON_VALUES, "remember": JSON_VALUES}),
)
#: Depths around the recursion limit (about 1,000) and up to 100,000.
_AROUND_THE_LIMIT = st.sampled_from([2, 100, 500, 999, 1_000, 1_001, 3_000, 10_000, 100_000])
DEPTHS = st.one_of(_AROUND_THE_LIMIT, _AROUND_THE_LIMIT, st.integers(1, 100_000))


@st.composite
def deep_json(draw: st.DrawFn) -> bytes:
    """JSON nested ``depth`` levels: arrays, objects, or both, around a value, sometimes
    inside a shaped value or an embedded key, sometimes unterminated."""
    depth = draw(DEPTHS)
    shape = draw(st.sampled_from(["array", "object", "mixed"]))
    leaf = json.dumps(draw(JSON_SCALARS)).encode()
    if shape == "array":
        body = b"[" * depth + leaf + b"]" * depth
    elif shape == "object":
        body = b'{"a":' * depth + leaf + b"}" * depth
    else:
        body = b'[{"a":' * (depth // 2) + leaf + b"}]" * (depth // 2)
    wrap = draw(st.sampled_from(["none", "list", "name", "user", "extra"]))
    if wrap == "list":
        body = b"[" + body + b"]"
    elif wrap != "none":
        body = b'{"' + wrap.encode() + b'":' + body + b', "price": 1}'
    if draw(st.integers(0, 9)) == 0:
        body = body[:draw(st.integers(0, len(body)))]
    return body


@st.composite
def json_bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 5))
    if kind < 3:
        return draw(deep_json())
    value = draw(SHAPED if kind < 3 else JSON_VALUES | st.lists(SHAPED, max_size=3))
    body = json.dumps(value, allow_nan=True).encode()
    if draw(st.integers(0, 7)) == 0:  # broken: cut, or a stray byte
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(st.sampled_from([b"", b"\xff", b",", b"}", b"\x00"]))
    return body


FIELD_NAMES = st.sampled_from(["name", "age", "tags", "note", "csrf_token", "upload"]) | ANY_TEXT


@st.composite
def urlencoded_bodies(draw: st.DrawFn) -> bytes:
    pairs = draw(st.lists(st.tuples(FIELD_NAMES, ANY_TEXT | INTS) | st.tuples(
        st.just("csrf_token"), CSRF_TOKENS.map(bytes.decode)), max_size=6))
    return b"&".join(percent_encode(k.encode("utf-8", "surrogatepass"), draw, b"&=+%")
                     + b"=" + percent_encode(v.encode("utf-8", "surrogatepass"), draw,
                                             b"&=+%") for k, v in pairs)


@st.composite
def multipart_bodies(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A multipart body and its Content-Type: well-formed parts with hostile names, file
    names and headers, or broken framing."""
    boundary = draw(st.sampled_from([b"xyz", b"----WebKitFormBoundary7MA4", b"a" * 70,
                                     b"a" * 71, b"b\xffc", b"with space"]))
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        name = draw(FIELD_NAMES).encode("utf-8", "surrogatepass")
        disposition = b'form-data; name="' + name + b'"'
        if draw(st.booleans()):
            disposition += b'; filename="' + draw(text_bytes()) + b'"'
        if draw(st.integers(0, 9)) == 0:
            disposition = draw(st.sampled_from([b"attachment", b"form-data", b"form-data; x",
                                                b"form-data; name*=UTF-8''%ff"]))
        head = b"Content-Disposition: " + disposition + b"\r\n"
        if draw(st.booleans()):
            head += b"Content-Type: " + draw(CONTENT_TYPES) + b"\r\n"
        if draw(st.integers(0, 9)) == 0:
            head += b"X-Junk: " + b"j" * draw(st.sampled_from([10, 9000])) + b"\r\n"
        content = draw(text_bytes() | st.binary(max_size=64) | CSRF_TOKENS)
        parts.append(b"--" + boundary + b"\r\n" + head + b"\r\n" + content + b"\r\n")
    body = b"".join(parts) + b"--" + boundary + b"--\r\n"
    if draw(st.integers(0, 5)) == 0:
        body = body[:draw(st.integers(0, len(body)))]
    content_type = b"multipart/form-data; boundary=" + draw(st.sampled_from(
        [boundary, b'"' + boundary + b'"', b"other", b""]))
    return body, content_type


@st.composite
def requests(draw: st.DrawFn, area: str | None = None) -> RawRequest:
    """A hostile request, aimed at one of the app's routes (of ``area``: ``"b"``, the JSON
    bodies, ``"f"`` the forms...)."""
    path, methods, area = draw(paths(area))
    method = draw(st.sampled_from(methods) if draw(st.integers(0, 4)) else METHODS)
    query = draw(query_strings())
    target = path + (b"?" + query if query or draw(st.booleans()) else b"")
    headers: list[tuple[bytes, bytes]] = []
    hosts = draw(st.sampled_from([0, 1, 1, 1, 2, 2, 3]))
    for _ in range(hosts):
        headers.append((draw(st.sampled_from([b"host", b"Host", b"HOST"])), draw(HOSTS)))
    headers += draw(extra_headers())
    if draw(st.integers(0, 2)) == 0:
        headers.append((b"cookie", draw(cookie_headers())))
    elif area == "csrf" and draw(st.booleans()):  # a valid token: the check reads the form
        headers.append((b"cookie", b"csrftoken=" + draw(CSRF_TOKENS)))
    if area == "s" and draw(st.integers(0, 3)):  # the security schemes read credentials
        headers.append((b"authorization", draw(CREDENTIALS)))
    kinds = ["none", "json", "urlencoded", "multipart", "bytes", "big"]
    if area == "b":  # JSON bodies, mostly
        kinds += ["json"] * 10
    elif area in ("s", "sub", "csrf"):
        kinds += ["json"] * 4
    if area in ("f", "csrf"):
        kinds += ["urlencoded", "multipart"] * 2
    body_kind = draw(st.sampled_from(kinds))
    body, content_type = b"", None
    if body_kind == "json":
        body, content_type = draw(json_bodies()), b"application/json"
    elif body_kind == "urlencoded":
        body, content_type = draw(urlencoded_bodies()), b"application/x-www-form-urlencoded"
    elif body_kind == "multipart":
        body, content_type = draw(multipart_bodies())
    elif body_kind == "bytes":
        body = draw(st.binary(max_size=64))
    elif body_kind == "big":  # over a route's 1 KiB, or the app's 1 MiB
        body = b"x" * draw(st.sampled_from([1025, 1024 * 1024 + 1]))
    if draw(st.integers(0, 4)) == 0:  # the wrong content type, or none
        content_type = draw(CONTENT_TYPES | st.none())
    if content_type is not None:
        headers.append((b"content-type", content_type))
    length = draw(st.sampled_from(["right"] * 6 + ["none", "short", "long", "junk", "two"]))
    if length == "right" and (body or method in ("POST", "PUT", "PATCH")):
        headers.append((b"content-length", str(len(body)).encode()))
    elif length == "short":
        headers.append((b"content-length", str(max(len(body) - 1, 0)).encode()))
    elif length == "long":
        headers.append((b"content-length", str(len(body) + 10**draw(st.integers(0, 20)))
                        .encode()))
    elif length == "junk":
        headers.append((b"content-length", draw(st.sampled_from(
            [b"-1", b"1e3", b" 5", b"0x10", b"\xff", b"", b"9" * 30]))))
    elif length == "two":
        headers += [(b"content-length", str(len(body)).encode())] * 2
    if draw(st.booleans()):
        headers = draw(st.permutations(headers))
    chunks = draw(st.lists(st.integers(1, 4096), max_size=3)) if body else []
    sent = draw(st.integers(0, len(body))) if body and draw(st.integers(0, 9)) == 0 else None
    return RawRequest(method, target, headers, body, chunks, sent)


# -- WebSocket sessions ---------------------------------------------------------------------------

WS_MESSAGES = st.one_of(
    st.builds(lambda t: {"type": "websocket.receive", "text": t}, ANY_TEXT),
    st.builds(lambda v: {"type": "websocket.receive", "text": json.dumps(v)}, JSON_VALUES),
    st.builds(lambda b: {"type": "websocket.receive", "text": b.decode("utf-8", "replace")},
              deep_json()),
    st.builds(lambda b: {"type": "websocket.receive", "bytes": b}, st.binary(max_size=64)),
    st.builds(lambda b: {"type": "websocket.receive", "bytes": b}, deep_json()),
    st.just({"type": "websocket.receive"}),  # neither text nor bytes
)


@st.composite
def websocket_sessions(draw: st.DrawFn) -> WebSocketSession:
    path = draw(st.sampled_from([b"/ws/1", b"/ws/json", b"/ws/x", b"/ws/" + b"9" * 40,
                                 b"/ws/1/", b"/static/a.txt", b"/q", b""]))
    if not path:
        path = b"/ws/" + percent_encode(draw(text_bytes()), draw)
    query = draw(query_strings())
    headers = [(b"host", draw(HOSTS)) for _ in range(draw(st.integers(0, 2)))]
    headers += draw(extra_headers())
    return WebSocketSession(
        path + (b"?" + query if query else b""), headers,
        draw(st.lists(st.sampled_from(["chat", "x"]) | ANY_TEXT, max_size=3)),
        draw(st.lists(WS_MESSAGES, max_size=5)), draw(st.booleans()),
    )
