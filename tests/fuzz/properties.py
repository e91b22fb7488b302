"""Run a drawn request against an ASGI app, as a server would, and check what came back.

The property, for every request: the app answers (or, when the client went away before its
body was complete, may send nothing); nothing escapes to the server; nothing is a 5xx; no error
reaches ``joey.errors`` (what the app logs as unhandled, see
:func:`joey._engine.errors.record_unhandled`); every error the engine answers went through the
app's exception handler; and no authority in an answer comes from a second ``Host`` header.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import socket
import time
import zlib
from typing import Any
from urllib.parse import unquote, urlsplit

import brotli
import zstandard

from joey.types import ASGIApp, Message
from tests.fuzz.strategies import SERVER_HOST, RawRequest, WebSocketSession

#: How long one request may take in process before it counts as a hang (a loaded machine
#: runs a 100,000-level body in well under a second).
ANSWER_WITHIN = 60.0


@dataclasses.dataclass
class Outcome:
    """What the app did with one request."""

    sent: list[Message]
    errors: list[BaseException]
    escaped: BaseException | None
    client_left: bool  # the client went away before its body was complete
    #: the receive messages the app itself was handed (below every ASGI middleware)
    handed: list[Message] = dataclasses.field(default_factory=list)

    @property
    def start(self) -> Message | None:
        starts = [m for m in self.sent if m["type"] == "http.response.start"]
        assert len(starts) <= 1, f"the response started twice: {starts}"
        return starts[0] if starts else None

    @property
    def status(self) -> int:
        assert self.start is not None
        status: int = self.start["status"]
        return status

    def headers(self, name: bytes) -> list[bytes]:
        assert self.start is not None
        return [v for k, v in self.start.get("headers", []) if k.lower() == name]

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent
                        if m["type"] == "http.response.body")


def scope_path(raw_path: bytes, how: str) -> str:
    """``path`` as servers derive it from the raw path: uvicorn percent-decodes it as UTF-8
    with replacement characters; others use surrogate escapes for what is not UTF-8."""
    if how == "surrogateescape":
        from urllib.parse import unquote_to_bytes

        return unquote_to_bytes(raw_path).decode("utf-8", "surrogateescape")
    return unquote(raw_path.decode("latin-1"))


def http_scope(request: RawRequest, decode: str = "uvicorn") -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1", "method": request.method, "scheme": "http",
        "path": scope_path(request.path, decode), "raw_path": request.path,
        "root_path": "", "query_string": request.query,
        "headers": [(name.lower(), value) for name, value in request.headers],
        "client": ("127.0.0.1", 50000), "server": (SERVER_HOST, 80),
        "extensions": {"joey.errors": [], "fuzz.body": []},
    }


async def serve(app: ASGIApp, request: RawRequest, decode: str = "uvicorn") -> Outcome:
    """Run ``app`` with ``request`` as a server would: the body in its chunks, then (as long
    as the client stays) nothing until the response is over, then a disconnect."""
    scope = http_scope(request, decode)
    pieces, leaves = request.body_messages()
    sent: list[Message] = []
    done = asyncio.Event()

    async def receive() -> Message:
        if pieces:
            chunk = pieces.pop(0)
            return {"type": "http.request", "body": chunk,
                    "more_body": bool(pieces) or leaves}
        if not leaves:
            await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            done.set()

    escaped = None
    try:
        await asyncio.wait_for(app(scope, receive, send), ANSWER_WITHIN)
    except Exception as exc:
        escaped = exc
    return Outcome(sent, scope["extensions"]["joey.errors"], escaped, leaves,
                   scope["extensions"]["fuzz.body"])


def check(request: RawRequest, outcome: Outcome) -> None:
    """The property (see the module docstring)."""
    if outcome.escaped is not None:
        raise AssertionError(f"an exception escaped to the server: {outcome.escaped!r}"
                             ) from outcome.escaped
    if outcome.errors:
        raise AssertionError(f"the app logged an unhandled {outcome.errors[0]!r}"
                             ) from outcome.errors[0]
    if outcome.client_left:
        complete = [m for m in outcome.handed
                    if m["type"] == "http.request" and not m.get("more_body", False)]
        assert not complete, (
            "the client went away mid-body, and the app was handed the "
            f"{sum(len(m.get('body', b'')) for m in outcome.handed)} bytes it had as a whole "
            "body")
    start = outcome.start
    if start is None:
        assert outcome.client_left, "the app sent no response"
        return
    ends = [m for m in outcome.sent if m["type"] == "http.response.body"
            and not m.get("more_body", False)]
    # A stream stops when its client goes away: only then may a body stay unfinished.
    assert len(ends) == 1 or (outcome.client_left and not ends), (
        f"the response body never ended: {outcome.sent[-3:]}")
    status = outcome.status
    assert 100 <= status < 500, f"answered {status}: {outcome.body[:500]!r}"
    check_handled(outcome)
    check_authority(request, outcome)
    check_encoding(request, outcome)


def check_handled(outcome: Outcome) -> None:
    """An error the engine answers went through the app's exception handler."""
    if outcome.status < 400 or not outcome.headers(b"x-fuzz-engine"):
        return
    if outcome.headers(b"x-fuzz-mount"):  # a mounted ASGI app answers for itself
        return
    assert outcome.headers(b"x-fuzz-handled"), (
        f"a {outcome.status} the exception handler never saw: {outcome.body[:300]!r}")


def check_authority(request: RawRequest, outcome: Outcome,
                    server: str = SERVER_HOST) -> None:
    """An authority the app puts in an answer (``request.url``, a redirect) is the one Host
    the client sent, or the server's own: never one of two Host headers."""
    hosts = request.header_values(b"host")
    shown = [value.decode("latin-1") for value in outcome.headers(b"x-fuzz-url")]
    for location in outcome.headers(b"location"):
        text = location.decode("latin-1")
        assert not text.startswith("//"), f"a redirect to another site: {text}"
        parts = urlsplit(text)
        if parts.scheme or parts.netloc:
            shown.append(f"{parts.scheme}://{parts.netloc}")
    for url in shown:
        assert len(hosts) <= 1, f"{url} chosen from {len(hosts)} Host headers: {hosts}"
        netloc = url.partition("://")[2]
        candidates = {server, f"{server}:80"}
        if hosts:
            host = hosts[0].decode("latin-1")
            candidates |= {host, host.removesuffix(":80"), host.removesuffix(":443")}
        assert netloc in candidates, f"{url} is neither the Host ({hosts}) nor the server"


def check_encoding(request: RawRequest, outcome: Outcome) -> None:
    """A compressed body decompresses."""
    [coding] = outcome.headers(b"content-encoding") or [b""]
    body = outcome.body
    if not body or request.method == "HEAD":
        return
    if coding == b"gzip":
        gzip.decompress(body)
    elif coding == b"br":
        brotli.decompress(body)
    elif coding == b"zstd":
        zstandard.ZstdDecompressor().decompressobj().decompress(body)
    elif coding == b"deflate":
        zlib.decompress(body)


# -- WebSocket --------------------------------------------------------------------------------

async def serve_websocket(app: ASGIApp, session: WebSocketSession) -> Outcome:
    raw_path, _, query = session.target.partition(b"?")
    scope = {
        "type": "websocket", "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1", "scheme": "ws", "path": scope_path(raw_path, "uvicorn"),
        "raw_path": raw_path, "root_path": "", "query_string": query,
        "headers": [(name.lower(), value) for name, value in session.headers],
        "client": ("127.0.0.1", 50000), "server": (SERVER_HOST, 80),
        "subprotocols": session.subprotocols, "extensions": {"joey.errors": []},
    }
    if session.denial_response:
        scope["extensions"]["websocket.http.response"] = {}
    incoming: list[Message] = [{"type": "websocket.connect"}, *session.messages]
    sent: list[Message] = []

    async def receive() -> Message:
        if incoming:
            return incoming.pop(0)
        return {"type": "websocket.disconnect", "code": 1000}

    async def send(message: Message) -> None:
        sent.append(message)

    escaped = None
    try:
        await asyncio.wait_for(app(scope, receive, send), ANSWER_WITHIN)
    except Exception as exc:
        escaped = exc
    return Outcome(sent, scope["extensions"]["joey.errors"], escaped, False)


def check_websocket(outcome: Outcome) -> None:
    if outcome.escaped is not None:
        raise AssertionError(f"an exception escaped to the server: {outcome.escaped!r}"
                             ) from outcome.escaped
    if outcome.errors:
        raise AssertionError(f"the app logged an unhandled {outcome.errors[0]!r}"
                             ) from outcome.errors[0]
    assert outcome.sent, "the app never answered the handshake"
    assert outcome.sent[0]["type"] in (
        "websocket.accept", "websocket.close", "websocket.http.response.start"), outcome.sent
    for message in outcome.sent:
        if message["type"] == "websocket.http.response.start":
            assert message["status"] < 500, f"refused with {message['status']}"
        if message["type"] == "websocket.close":
            assert message.get("code", 1000) != 1011, f"closed as an internal error: {message}"


# -- over a real server -----------------------------------------------------------------------

def exchange(port: int, request: RawRequest, timeout: float = 30.0) -> bytes:
    """Send ``request`` to 127.0.0.1:``port``; what came back before the server closed
    (the client shuts its side down at once when it goes away mid-body)."""
    chunks = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(request.wire())
            if request.sent is not None:
                sock.shutdown(socket.SHUT_WR)
        except OSError:  # the server refused the request and closed while we were sending
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def check_wire(request: RawRequest, raw: bytes, server: str) -> None:
    """The property over a real server: a response (unless the client went away mid-body or
    the server itself refused the bytes and closed) whose status is not a 5xx, and no
    authority from a second Host."""
    if not raw:
        return  # the server closed without answering: nothing reached the app to answer
    head, _, _ = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.split(b"\r\n")
    status = int(status_line.split()[1])
    assert status < 500, f"answered {status}: {raw[:500]!r}"
    headers = [tuple(line.split(b":", 1)) for line in lines if b":" in line]
    fake = Outcome([{"type": "http.response.start", "status": status,
                     "headers": [(k.strip().lower(), v.strip()) for k, v in headers]}],
                   [], None, False)
    check_authority(request, fake, server)
