"""Headers, multi-dicts, query parameters, cookies, URLs, state and addresses."""

from __future__ import annotations

from typing import Any

import pytest

from joey.datastructures import (
    URL,
    Address,
    Headers,
    MultiDict,
    MutableHeaders,
    QueryParams,
    State,
    encode_header,
    parse_cookies,
)

# --- MultiDict / QueryParams ----------------------------------------------------------------------


def test_multidict_keeps_every_value() -> None:
    md = MultiDict([("tag", "a"), ("x", "1"), ("tag", "b")])
    assert md["tag"] == "b"  # the latest wins
    assert md.get("tag") == "b"
    assert md.getlist("tag") == ["a", "b"]
    assert md.getlist("missing") == []
    assert md.multi_items() == [("tag", "a"), ("x", "1"), ("tag", "b")]
    assert md.to_dict() == {"tag": ["a", "b"], "x": "1"}
    assert list(md) == ["tag", "x"]
    assert len(md) == 2
    assert "x" in md and "y" not in md
    assert md.get("y") is None
    with pytest.raises(KeyError):
        md["y"]
    assert repr(md) == "MultiDict([('tag', 'a'), ('x', '1'), ('tag', 'b')])"


def test_multidict_getlist_is_a_copy() -> None:
    md = MultiDict([("a", "1")])
    md.getlist("a").append("2")
    assert md.getlist("a") == ["1"]


def test_multidict_equality() -> None:
    assert MultiDict([("a", "1"), ("b", "2")]) == MultiDict([("b", "2"), ("a", "1")])
    assert MultiDict([("a", "1")]) != MultiDict([("a", "1"), ("a", "1")])
    assert MultiDict([("a", "1")]) == {"a": "1"}
    assert MultiDict([("a", "1")]) != {"a": "2"}
    with pytest.raises(TypeError):
        hash(MultiDict())


def test_query_params_from_bytes() -> None:
    params = QueryParams.from_bytes(b"a=1&a=2&b=x+y")
    assert isinstance(params, QueryParams)
    assert params.getlist("a") == ["1", "2"]
    assert params["b"] == "x y"
    assert repr(params).startswith("QueryParams(")


# --- Headers --------------------------------------------------------------------------------------


def test_headers_are_case_insensitive_and_multi_valued() -> None:
    headers = Headers([(b"accept", b"text/html"), (b"x-tag", b"a"), (b"X-Tag", b"b")])
    assert headers["Accept"] == "text/html"
    assert headers["x-TAG"] == "a"
    assert headers.getlist("x-tag") == ["a", "b"]
    assert headers.getlist("nope") == []
    assert headers.get("nope") is None
    assert headers.get("nope", "fallback") == "fallback"
    assert "ACCEPT" in headers
    not_a_name: object = 42
    assert not_a_name not in headers
    assert list(headers) == ["accept", "x-tag"]
    assert len(headers) == 2
    with pytest.raises(KeyError):
        headers["nope"]
    assert repr(headers) == f"Headers({headers.raw!r})"


@pytest.mark.parametrize("first", ["getitem", "get", "getlist", "contains", "iter", "len"])
def test_headers_index_is_built_by_any_first_access(first: str) -> None:
    headers = Headers([(b"x-a", b"caf\xe9")])
    results: dict[str, Any] = {
        "getitem": lambda: headers["x-a"],
        "get": lambda: headers.get("x-a"),
        "getlist": lambda: headers.getlist("x-a")[0],
        "contains": lambda: "x-a" in headers and "café",
        "iter": lambda: list(headers) and "café",
        "len": lambda: len(headers) and "café",
    }
    assert results[first]() == "café"
    assert headers["x-a"] == "café"  # latin-1: any byte decodes


def test_empty_headers() -> None:
    headers = Headers()
    assert headers.raw == []
    assert len(headers) == 0


# --- encode_header / MutableHeaders ---------------------------------------------------------------


def test_encode_header() -> None:
    assert encode_header("X-Name", "value") == (b"x-name", b"value")
    assert encode_header(b"X-Raw", b"\xff") == (b"x-raw", b"\xff")
    for name, value in [("x", "a\rb"), ("x", "a\nb"), ("x", "a\x00b"), ("x\n", "v")]:
        with pytest.raises(ValueError, match="CR, LF or NUL"):
            encode_header(name, value)
    for name in ["", "a b", "a:b"]:
        with pytest.raises(ValueError, match="Invalid header name"):
            encode_header(name, "v")
    with pytest.raises(UnicodeEncodeError):
        encode_header("x", "snowman ☃")  # not latin-1: refused rather than mangled


def test_mutable_headers() -> None:
    headers = MutableHeaders({"Content-Type": "text/plain", "X-A": "1"})
    assert headers.raw == [(b"content-type", b"text/plain"), (b"x-a", b"1")]
    headers.append("set-cookie", "a=1")
    headers.append("Set-Cookie", "b=2")
    assert headers.getlist("SET-COOKIE") == ["a=1", "b=2"]
    assert headers["set-cookie"] == "a=1"
    headers["set-cookie"] = "only"
    assert headers.getlist("set-cookie") == ["only"]
    assert headers.setdefault("x-a", "2") == "1"
    assert headers.setdefault("x-b", "3") == "3"
    assert headers.get("missing") is None
    assert headers.get("missing", "d") == "d"
    with pytest.raises(KeyError):
        headers["missing"]
    assert "X-B" in headers
    not_a_name: object = 1
    assert not_a_name not in headers
    del headers["X-A"]
    assert "x-a" not in headers
    assert headers.items() == [("content-type", "text/plain"), ("set-cookie", "only"),
                               ("x-b", "3")]
    assert list(headers) == ["content-type", "set-cookie", "x-b"]
    assert len(headers) == 3
    assert repr(headers).startswith("MutableHeaders([('content-type'")


def test_mutable_headers_from_pairs_and_empty() -> None:
    headers = MutableHeaders([("x", "1"), ("x", "2")])
    assert headers.getlist("x") == ["1", "2"]
    assert MutableHeaders().raw == []
    with pytest.raises(ValueError):
        MutableHeaders([("x", "bad\r\n")])


# --- cookies --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "cookies"),
    [
        ("", {}),
        ("a=1", {"a": "1"}),
        ("a=1; b=2", {"a": "1", "b": "2"}),
        ("a=1;b=2", {"a": "1", "b": "2"}),
        ('a="quoted value"', {"a": "quoted value"}),
        ('a="', {"a": '"'}),
        ("a=1; a=2", {"a": "1"}),  # the first (most specific path) wins, as browsers send it
        ("broken; a=1", {"a": "1"}),  # one bad pair does not lose the rest
        ("=nameless; b=2", {"b": "2"}),
        ("a=; b=x=y", {"a": "", "b": "x=y"}),
        ('j={"x": 1}; n=2', {"j": '{"x": 1}', "n": "2"}),
    ],
)
def test_parse_cookies(header: str, cookies: dict[str, str]) -> None:
    assert parse_cookies(header) == cookies


# --- URL ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "host", "expected"),
    [
        ({"scheme": "http", "path": "/p", "query_string": b"a=1"}, "example.com",
         "http://example.com/p?a=1"),
        ({"scheme": "https", "path": "/"}, "example.com:443", "https://example.com/"),
        ({"scheme": "http", "path": "/"}, "example.com:8080", "http://example.com:8080/"),
        ({"scheme": "http", "path": "/"}, "[::1]:8000", "http://[::1]:8000/"),
        ({"scheme": "http", "path": "/"}, "[::1]", "http://[::1]/"),
        # An invalid Host is not used at all: the server's own address stands in.
        ({"scheme": "http", "path": "/", "server": ("10.0.0.1", 81)}, "host:notaport",
         "http://10.0.0.1:81/"),
        ({"scheme": "http", "path": "/x", "server": ("10.0.0.1", 8000)}, None,
         "http://10.0.0.1:8000/x"),
        ({"scheme": "ws", "path": "/ws", "server": ("h", 80)}, None, "ws://h/ws"),
        ({"path": "/"}, None, "http:///"),
        ({"scheme": "gopher", "path": "/"}, "h:70", "gopher://h:70/"),
    ],
)
def test_url_from_scope(scope: dict[str, Any], host: str | None, expected: str) -> None:
    assert str(URL.from_scope(scope, host)) == expected


def test_url_parts_and_equality() -> None:
    url = URL.from_scope({"scheme": "https", "root_path": "/app", "path": "/app/items",
                          "query_string": b"page=2"}, "example.com:8443")
    assert (url.scheme, url.hostname, url.port, url.path, url.query) == (
        "https", "example.com", 8443, "/app/items", "page=2")
    assert url.netloc == "example.com:8443"
    assert url == "https://example.com:8443/app/items?page=2"
    assert hash(url) == hash("https://example.com:8443/app/items?page=2")
    assert repr(url) == "URL('https://example.com:8443/app/items?page=2')"


# --- State and Address ----------------------------------------------------------------------------


def test_state() -> None:
    shared: dict[str, Any] = {}
    state = State(shared)
    state.db = "pool"
    assert shared == {"db": "pool"}
    assert state.db == "pool"
    assert "db" in state
    assert repr(state) == "State({'db': 'pool'})"
    del state.db
    assert "db" not in state
    with pytest.raises(AttributeError, match="State has no attribute 'db'"):
        _ = state.db
    with pytest.raises(AttributeError):
        del state.db
    assert "x" not in State()


def test_address() -> None:
    address = Address("127.0.0.1", 8000)
    host, port = address
    assert (host, port) == ("127.0.0.1", 8000)
    assert address == ("127.0.0.1", 8000)
    assert address == Address("127.0.0.1", 8000)
    assert address != Address("127.0.0.1", 8001)
    assert address != "127.0.0.1:8000"
    assert hash(address) == hash(("127.0.0.1", 8000))
    assert repr(address) == "Address(host='127.0.0.1', port=8000)"


def test_state_is_importable_from_datastructures_as_before() -> None:
    import joey
    import joey.datastructures
    import joey.state

    assert joey.datastructures.State is joey.state.State is joey.State
    assert joey.datastructures.bind_state is joey.state.bind_state
    assert joey.datastructures.state_mapping is joey.state.state_mapping
