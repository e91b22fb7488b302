"""Small containers used by requests and responses: headers, query parameters, URLs.

Everything here is parsed lazily from the raw ASGI data and never does I/O. The compiled build
compiles this module; every public class allows Python subclasses (``mypyc_attr``). ``State``
(an attribute bag: ``__getattr__``/``__setattr__`` tricks) lives in :mod:`joey.state`, which
stays interpreted, and is re-exported here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar
from urllib.parse import unquote_to_bytes

from joey.compiled import mypyc_attr
from joey.exceptions import BadRequest
from joey.state import State as State
from joey.state import bind_state as bind_state
from joey.state import state_mapping as state_mapping

RawHeaders = list[tuple[bytes, bytes]]
_V = TypeVar("_V")


@mypyc_attr(allow_interpreted_subclasses=True)
class MultiDict(Mapping[str, _V], Generic[_V]):
    """An immutable mapping where a key may carry several values, in order.

    ``md[key]`` and ``md.get(key)`` give the *last* value for the key (as a form or query
    string usually means "the latest wins"); ``md.getlist(key)`` gives all of them.

    Example::

        q = MultiDict([("tag", "a"), ("tag", "b")])
        assert q["tag"] == "b"
        assert q.getlist("tag") == ["a", "b"]
    """

    __slots__ = ("_items", "_lists")

    def __init__(self, items: Iterable[tuple[str, _V]] = ()) -> None:
        self._items = list(items)
        lists: dict[str, list[_V]] = {}
        for key, value in self._items:
            bucket = lists.get(key)
            if bucket is None:
                lists[key] = [value]
            else:
                bucket.append(value)
        self._lists = lists

    def __getitem__(self, key: str) -> _V:
        return self._lists[key][-1]

    def get(self, key: str, default: Any = None) -> Any:
        values = self._lists.get(key)
        return values[-1] if values else default

    def __iter__(self) -> Iterator[str]:
        return iter(self._lists)

    def __len__(self) -> int:
        return len(self._lists)

    def __contains__(self, key: object) -> bool:
        return key in self._lists

    def getlist(self, key: str) -> list[_V]:
        """Every value given for ``key``, in order (an empty list when absent)."""
        return list(self._lists.get(key, ()))

    def multi_items(self) -> list[tuple[str, _V]]:
        """Every ``(key, value)`` pair, in the order received, repeats included."""
        return list(self._items)

    def to_dict(self) -> dict[str, _V | list[_V]]:
        """A plain dict: single values as they are, repeated keys as lists."""
        return {k: (v[0] if len(v) == 1 else list(v)) for k, v in self._lists.items()}

    def __eq__(self, other: object) -> bool:
        # Same keys with the same values in the same order per key; key order is free.
        if isinstance(other, MultiDict):
            return self._lists == other._lists
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._items!r})"


@mypyc_attr(allow_interpreted_subclasses=True)
class QueryParams(MultiDict[str]):
    """The parsed query string: ``+`` and ``%xx`` decoded, repeated keys kept.

    Parsing follows ``urllib.parse.parse_qsl(keep_blank_values=True)``: pairs are split on
    ``&``, a pair without ``=`` is a key with an empty value, and an invalid ``%`` escape is
    kept literally. Two choices differ from the standard library: one stray leading ``?`` is
    ignored, and text that is not valid UTF-8 once decoded is refused with a 400 instead of
    being silently replaced.
    """

    __slots__ = ()

    @classmethod
    def from_bytes(cls, query_string: bytes) -> QueryParams:
        """Parse a raw ASGI ``query_string``; raises :class:`BadRequest` on invalid UTF-8."""
        return cls(parse_query_string(query_string))


def parse_query_string(query_string: bytes) -> list[tuple[str, str]]:
    """Split and decode a raw query string into ``(key, value)`` pairs."""
    if query_string.startswith(b"?"):
        query_string = query_string[1:]
    pairs: list[tuple[str, str]] = []
    if not query_string:
        return pairs
    if b"%" not in query_string and b"+" not in query_string:
        # perf: nothing to unescape, so decode once and split as text
        try:
            text = query_string.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("The query string is not valid UTF-8.") from None
        for part in text.split("&"):
            if part:
                name, _, text_value = part.partition("=")
                pairs.append((name, text_value))
        return pairs
    try:
        for piece in query_string.split(b"&"):
            if not piece:
                continue
            key, _, value = piece.partition(b"=")
            pairs.append((unquote_plus(key).decode("utf-8"),
                          unquote_plus(value).decode("utf-8")))
    except UnicodeDecodeError:
        raise BadRequest("The query string is not valid UTF-8 once percent-decoded.") from None
    return pairs


def unquote_plus(raw: bytes | bytearray) -> bytes:
    """``application/x-www-form-urlencoded`` unescaping: ``+`` is a space, ``%XX`` a byte."""
    data = bytes(raw).replace(b"+", b" ")
    return unquote_to_bytes(data) if b"%" in data else data


# perf: the names Joey itself asks for, encoded once
_ENCODED_NAMES = {name: name.encode("latin-1") for name in (
    "content-type", "content-length", "host", "cookie", "accept", "accept-encoding", "origin",
)}


@mypyc_attr(allow_interpreted_subclasses=True)
class Headers(Mapping[str, str]):
    """Case-insensitive, multi-valued, read-only view of raw ASGI headers.

    Names and values are decoded as latin-1 (as HTTP defines them), so no header can fail to
    decode. ``headers[name]`` gives the first value; ``headers.getlist(name)`` every value.

    Example::

        headers = Headers([(b"accept", b"text/html"), (b"x-tag", b"a"), (b"x-tag", b"b")])
        headers["Accept"]         # "text/html"
        headers.getlist("x-tag")  # ["a", "b"]
    """

    __slots__ = ("_index", "raw")

    def __init__(self, raw: RawHeaders | None = None) -> None:
        self.raw: RawHeaders = raw if raw is not None else []
        self._index: dict[str, list[str]] | None = None

    def _build_index(self) -> dict[str, list[str]]:
        index: dict[str, list[str]] = {}
        for name, value in self.raw:
            key = name.decode("latin-1").lower()
            bucket = index.get(key)
            if bucket is None:
                index[key] = [value.decode("latin-1")]
            else:
                bucket.append(value.decode("latin-1"))
        self._index = index
        return index

    def __getitem__(self, key: str) -> str:
        index = self._index if self._index is not None else self._build_index()
        return index[key.lower()][0]

    def get(self, key: str, default: Any = None) -> Any:
        if self._index is None:
            # perf: a handler usually reads one or two headers; scanning the raw list
            # (names are lowercase bytes per the ASGI spec) beats building the index.
            wanted = _ENCODED_NAMES.get(key) or key.lower().encode("latin-1")
            for name, value in self.raw:
                if name == wanted:
                    return value.decode("latin-1")
            if all(name.islower() or not name.isalpha() for name, _ in self.raw):
                return default
        index = self._index if self._index is not None else self._build_index()
        values = index.get(key.lower())
        return values[0] if values else default

    def getlist(self, key: str) -> list[str]:
        """Every value of the header ``key``, in order received."""
        index = self._index if self._index is not None else self._build_index()
        return list(index.get(key.lower(), ()))

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        index = self._index if self._index is not None else self._build_index()
        return key.lower() in index

    def __iter__(self) -> Iterator[str]:
        index = self._index if self._index is not None else self._build_index()
        return iter(index)

    def __len__(self) -> int:
        index = self._index if self._index is not None else self._build_index()
        return len(index)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.raw!r})"


_FORBIDDEN_IN_HEADERS = frozenset(b"\r\n\x00")


def encode_header(name: str | bytes, value: str | bytes) -> tuple[bytes, bytes]:
    """Encode one header for sending, refusing CR, LF and NUL (header injection)."""
    raw_name = name.encode("latin-1") if isinstance(name, str) else name
    raw_value = value.encode("latin-1") if isinstance(value, str) else value
    if _FORBIDDEN_IN_HEADERS.intersection(raw_name) or _FORBIDDEN_IN_HEADERS.intersection(
        raw_value
    ):
        raise ValueError(f"Header {raw_name!r} contains CR, LF or NUL: refusing to send it.")
    if not raw_name or b":" in raw_name or b" " in raw_name:
        raise ValueError(f"Invalid header name {raw_name!r}.")
    return raw_name.lower(), raw_value


@mypyc_attr(allow_interpreted_subclasses=True)
class MutableHeaders:
    """Response headers: ordered, repeatable (``set-cookie``), validated on every write.

    Example::

        headers = MutableHeaders()
        headers["cache-control"] = "no-store"      # replaces
        headers.append("set-cookie", "a=1")        # adds
    """

    __slots__ = ("raw",)

    def __init__(self, headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None):
        self.raw: RawHeaders = []
        if headers is None:
            return
        items = headers.items() if isinstance(headers, Mapping) else headers
        for name, value in items:
            self.raw.append(encode_header(name, value))

    def __setitem__(self, name: str, value: str) -> None:
        raw_name, raw_value = encode_header(name, value)
        self.raw = [item for item in self.raw if item[0] != raw_name]
        self.raw.append((raw_name, raw_value))

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __delitem__(self, name: str) -> None:
        raw_name = name.lower().encode("latin-1")
        self.raw = [item for item in self.raw if item[0] != raw_name]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        raw_name = name.lower().encode("latin-1")
        return any(item[0] == raw_name for item in self.raw)

    def get(self, name: str, default: str | None = None) -> str | None:
        raw_name = name.lower().encode("latin-1")
        for key, value in self.raw:
            if key == raw_name:
                return value.decode("latin-1")
        return default

    def getlist(self, name: str) -> list[str]:
        raw_name = name.lower().encode("latin-1")
        return [value.decode("latin-1") for key, value in self.raw if key == raw_name]

    def append(self, name: str, value: str) -> None:
        """Add a header line, keeping any others of the same name."""
        self.raw.append(encode_header(name, value))

    def setdefault(self, name: str, value: str) -> str:
        existing = self.get(name)
        if existing is not None:
            return existing
        self.append(name, value)
        return value

    def items(self) -> list[tuple[str, str]]:
        return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self.raw]

    def __iter__(self) -> Iterator[str]:
        return (k.decode("latin-1") for k, _ in self.raw)

    def __len__(self) -> int:
        return len(self.raw)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.items()!r})"


def parse_cookies(cookie_header: str) -> dict[str, str]:
    """Parse a ``Cookie`` header leniently: a malformed pair is skipped, never an error.

    The standard library's ``SimpleCookie`` drops *every* cookie after one it dislikes,
    which browsers do not do; this keeps the rest.
    """
    cookies: dict[str, str] = {}
    for chunk in cookie_header.split(";"):
        name, sep, value = chunk.partition("=")
        name = name.strip()
        if not sep or not name:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        cookies.setdefault(name, value)
    return cookies


@mypyc_attr(allow_interpreted_subclasses=True)
class URL:
    """The request URL, rebuilt from the ASGI scope.

    Example::

        @app.get("/items")
        async def items(request: Request) -> dict[str, str]:
            url = request.url  # .scheme, .hostname, .port, .path, .query
            return {"path": url.path, "self": str(url)}  # "https://example.com/items?page=2"
    """

    __slots__ = ("hostname", "path", "port", "query", "scheme")

    def __init__(self, scheme: str, hostname: str, port: int | None, path: str, query: str):
        self.scheme = scheme
        self.hostname = hostname
        self.port = port
        self.path = path
        self.query = query

    @classmethod
    def from_scope(cls, scope: Mapping[str, Any], host_header: str | None) -> URL:
        """The URL of a request: the ``Host`` header when it is a valid ``host[:port]``
        (see :func:`split_host`), otherwise the server's own address from the scope."""
        scheme = scope.get("scheme", "http")
        default_port = {"http": 80, "https": 443, "ws": 80, "wss": 443}.get(scheme)
        hostname = ""
        port: int | None = None
        authority = split_host(host_header) if host_header else None
        if authority is not None:
            hostname, port = authority
        elif scope.get("server"):
            hostname, port = scope["server"][0], scope["server"][1]
        if port == default_port:
            port = None
        path: str = scope.get("path", "/")  # already starts with root_path (ASGI spec)
        if path[:1] != "/":
            path = "/" + path  # never "http://host@evil" from a target like "@evil"
        query = scope.get("query_string", b"").decode("latin-1")
        return cls(scheme, hostname, port, path, query)

    @property
    def netloc(self) -> str:
        return self.hostname if self.port is None else f"{self.hostname}:{self.port}"

    def __str__(self) -> str:
        tail = f"?{self.query}" if self.query else ""
        return f"{self.scheme}://{self.netloc}{self.path}{tail}"

    def __repr__(self) -> str:
        return f"URL({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))


# RFC 3986 host: an IP-literal in brackets, or a reg-name (which covers IPv4), then an
# optional port of ASCII digits. Nothing that could carry a path, query, fragment,
# credentials or white space into a URL Joey builds.
_HOST_PORT = re.compile(
    r"(\[[0-9A-Fa-f:.]+(?:%25[A-Za-z0-9._~-]+)?\]"
    r"|(?:[A-Za-z0-9._~!$&'()*+,;=-]|%[0-9A-Fa-f]{2})+)"
    r"(?::([0-9]{0,5}))?"
)


def split_host(value: str) -> tuple[str, int | None] | None:
    """``("example.com", 8000)`` from a ``Host`` value, or ``None`` when it is not a valid
    ``host[:port]``: ``a@b``, ``x/y``, ``x#y``, ``a b``, ``h:²`` and ports above 65535
    are refused."""
    match = _HOST_PORT.fullmatch(value)
    if match is None:
        return None
    port_text = match.group(2)
    if not port_text:
        return match.group(1), None
    port = int(port_text)
    return (match.group(1), port) if port <= 65535 else None


@mypyc_attr(allow_interpreted_subclasses=True)
class Address:
    """The peer's ``(host, port)``, as the server reports it."""

    __slots__ = ("host", "port")

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port

    def __iter__(self) -> Iterator[Any]:
        return iter((self.host, self.port))

    def __eq__(self, other: object) -> bool:
        return tuple(self) == tuple(other) if isinstance(other, Address | tuple) else False

    def __hash__(self) -> int:
        return hash((self.host, self.port))

    def __repr__(self) -> str:
        return f"Address(host={self.host!r}, port={self.port})"


__all__ = [
    "URL",
    "Address",
    "Headers",
    "MultiDict",
    "MutableHeaders",
    "QueryParams",
    "RawHeaders",
    "encode_header",
    "parse_cookies",
    "parse_query_string",
    "split_host",
    "unquote_plus",
]
