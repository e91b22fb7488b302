"""Small helpers shared by the built-in ASGI middlewares (private).

They work on the raw ASGI header list (``[(name, value), ...]`` as bytes) because that is what
travels through ``http.response.start``: decoding it into a richer object per request would cost
more than the few lookups each middleware needs.
"""

from __future__ import annotations

from collections.abc import Iterable

from joey.types import Send

RawHeaders = list[tuple[bytes, bytes]]


def raw_headers(headers: Iterable[tuple[bytes, bytes]] | Iterable[list[bytes]]) -> RawHeaders:
    """A fresh, mutable copy of a header iterable (ASGI allows tuples or two-item lists)."""
    return [(bytes(pair[0]), bytes(pair[1])) for pair in headers]


def get_header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The first value of header ``name`` (lowercase bytes), compared case-insensitively."""
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def has_header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bool:
    return any(key.lower() == name for key, _ in headers)


def merge_vary(headers: RawHeaders, token: bytes) -> RawHeaders:
    """Add ``token`` to ``Vary``, keeping what is there and never repeating a name.

    Several ``Vary`` lines are folded into one; ``Vary: *`` already covers everything.
    """
    existing: list[bytes] = []
    rest: RawHeaders = []
    for key, value in headers:
        if key.lower() == b"vary":
            existing.extend(part.strip() for part in value.split(b",") if part.strip())
        else:
            rest.append((key, value))
    lowered = {part.lower() for part in existing}
    if b"*" not in lowered and token.lower() not in lowered:
        existing.append(token)
    rest.append((b"vary", b", ".join(existing)))
    return rest


async def send_plain(
    send: Send, status: int, body: bytes, headers: RawHeaders | None = None
) -> None:
    """Send a complete ``text/plain`` answer (used for refusals such as a 400)."""
    all_headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode("ascii")),
    ]
    if headers:
        all_headers.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body})
