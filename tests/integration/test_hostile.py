"""Hostile requests over real servers: uvicorn with both of its HTTP parsers.

h11 (what a plain ``pip install uvicorn`` gives) passes far more malformed input to the app
than httptools does, so every case runs under both. Whoever refuses a request, the answer is
a 4xx, the route is never reached, and no URL carries another authority.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.servers import Server, run_server, uvicorn_argv

PARSERS = ["httptools", "h11"]


@pytest.fixture(scope="module", params=PARSERS)
def servers(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    tmp: Path = tmp_path_factory.mktemp(f"hostile-{request.param}")
    with (run_server(uvicorn_argv("tests.integration.hostile_app:app", "--http",
                                  request.param), tmp, ready_path="/admin") as plain,
          run_server(uvicorn_argv("tests.integration.hostile_app:custom", "--http",
                                  request.param), tmp, ready_path="/admin") as custom,
          run_server(uvicorn_argv("tests.integration.hostile_app:redirecting", "--http",
                                  request.param), tmp, expect_ready=False) as redirecting,
          run_server(uvicorn_argv("tests.integration.hostile_app:protected", "--http",
                                  request.param), tmp, ready_path="/admin") as protected):
        yield Servers(request.param, plain, custom, redirecting, protected)
        for server in (plain, custom, redirecting, protected):
            assert "Traceback" not in server.output, server.output


@dataclasses.dataclass
class Servers:
    parser: str
    plain: Server
    custom: Server
    redirecting: Server
    protected: Server  # behind CSRFMiddleware


def exchange(server: Server, head: bytes, body: bytes = b"") -> tuple[int, dict[str, str],
                                                                      bytes]:
    """Send one raw request (``Connection: close``) and parse the reply."""
    for _ in range(100):  # the redirecting server was not polled for readiness
        try:
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            break
        except ConnectionRefusedError:
            time.sleep(0.05)
    with sock:
        sock.sendall(head + body)
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    raw = b"".join(chunks)
    header_block, _, payload = raw.partition(b"\r\n\r\n")
    status_line, *lines = header_block.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, payload


def get(target: str, host: str = "127.0.0.1") -> bytes:
    return (f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
            .encode())


@pytest.mark.parametrize(
    "target", ["@admin", "xadmin", "evil.com/admin", "http://evil.com/admin"],
)
def test_targets_that_are_not_paths_never_reach_a_route(servers: Servers,
                                                         target: str) -> None:
    status, headers, body = exchange(servers.plain, get(target))
    if servers.parser == "httptools" and target == "http://evil.com/admin":
        # httptools reduces absolute-form to its path (RFC 9112 allows it): /admin, with
        # the Host header, not evil.com, as the authority.
        assert (status, body) == (200, b"the admin page")
        return
    assert status == 400, body
    if servers.parser == "h11":  # h11 passes the target through: Joey refuses it
        assert headers["content-type"] == "application/problem+json"
        assert json.loads(body)["detail"] == (
            "The request target must be a path starting with '/'.")
    assert b"the admin page" not in body


def test_bad_target_goes_through_the_exception_handler(servers: Servers) -> None:
    status, _, body = exchange(servers.custom, get("/%ff"))
    assert status == 400
    assert json.loads(body) == {
        "error": "The request path is not valid UTF-8 once percent-decoded.", "status": 400}
    if servers.parser == "h11":  # h11: the target reaches the app
        status, _, body = exchange(servers.custom, get("@admin"))
        assert status == 400
        assert json.loads(body) == {
            "error": "The request target must be a path starting with '/'.", "status": 400}


def test_https_redirect_never_points_at_another_host(servers: Servers) -> None:
    status, headers, _ = exchange(servers.redirecting, get("@evil.com"))
    assert status == 400
    assert "location" not in headers
    status, headers, _ = exchange(servers.redirecting, get("/admin"))
    assert status == 308
    assert headers["location"] == "https://127.0.0.1/admin"


@pytest.mark.parametrize(
    "host", ["example.com/health?x=", "a@b", "x#y", "foo?", "127.0.0.1:\u00b2"],
)
def test_bad_host_never_ends_up_in_the_url(servers: Servers, host: str) -> None:
    server = servers.plain
    status, _, body = exchange(server, get("/url", host))
    if status == 400:  # the server refused the header itself: fine
        return
    assert status == 200, body
    assert json.loads(body) == {"url": f"http://127.0.0.1:{server.port}/url",
                                "host": "127.0.0.1"}


@pytest.mark.parametrize("hosts", [("127.0.0.1", "evil.com"), ("evil.com", "127.0.0.1"),
                                   ("127.0.0.1", "127.0.0.1")])
def test_two_host_headers_are_a_400(servers: Servers, hosts: tuple[str, str]) -> None:
    head = (f"GET /url HTTP/1.1\r\nHost: {hosts[0]}\r\nAccept: */*\r\nHost: {hosts[1]}\r\n"
            "Connection: close\r\n\r\n").encode()
    for server in (servers.plain, servers.custom, servers.redirecting):
        status, headers, body = exchange(server, head)
        assert status == 400, body
        assert "location" not in headers
        assert b"evil.com" not in body
    if servers.parser == "h11":  # h11 refuses the request itself: the app never sees it
        assert body == b"Invalid HTTP request received."
        return
    # httptools passes both: Joey refuses, through the app's exception handlers
    assert json.loads(exchange(servers.plain, head)[2])["detail"] == (
        "The request has more than one Host header.")
    assert json.loads(exchange(servers.custom, head)[2]) == {
        "error": "The request has more than one Host header.", "status": 400}


@pytest.mark.parametrize("depth", [30_000, 100_000])  # past every supported Python's limit
@pytest.mark.parametrize(("path", "status"), [("/json", 400), ("/typed", 422)])
def test_deep_json_is_a_client_error(servers: Servers, path: str, status: int,
                                     depth: int) -> None:
    body = b'{"a":' * depth + b"1" + b"}" * depth
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    got, headers, payload = exchange(servers.plain, head, body)
    assert got == status, payload
    assert headers["content-type"] == "application/problem+json"
    assert b"nested too deeply" in payload


# Deep JSON that fails validation at its first element: the pass that looks for every other
# problem must survive the depth too (it was a 500 from about 1,000 levels).
FIRST_ELEMENT = {
    "struct": (["body"], "Expected `object`, got `array`"),
    "structs": (["body", 0], "Expected `object`, got `array`"),
    "dataclass": (["body"], "Expected `object`, got `array`"),
    "typeddict": (["body"], "Expected `object`, got `array`"),
    "union": (["body", 0], "Expected `object`, got `array`"),
    "pydantic": (["body"], "Invalid JSON body: it is nested too deeply."),  # decoded untyped
}


# (not 1,000: on Python 3.12 and 3.13 a pydantic body that deep is not refused this way)
@pytest.mark.parametrize("depth", [10_000, 100_000])
@pytest.mark.parametrize("embedded", [False, True])
@pytest.mark.parametrize("kind", sorted(FIRST_ELEMENT))
def test_deep_json_failing_at_its_first_element_is_a_422(servers: Servers, kind: str,
                                                         embedded: bool, depth: int) -> None:
    body = b"[" * depth + b"]" * depth
    path = f"/typed/{kind}"
    location, message = FIRST_ELEMENT[kind]
    if embedded:
        body, path = b'{"value": ' + body + b"}", f"/embedded/{kind}"
        location = ["body", "value", *location[1:]] if kind != "pydantic" else location
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    got, headers, payload = exchange(servers.plain, head, body)
    assert got == 422, payload
    assert headers["content-type"] == "application/problem+json"
    [issue] = json.loads(payload)["errors"]
    assert (issue["location"], issue["message"]) == (location, message)


@pytest.mark.parametrize("bad", [b"abc.\xc3\xa9", b"\xc3\xa9.\xc3\xa9", b"x.\xe9"])
def test_non_ascii_csrf_tokens_are_refused_not_a_500(servers: Servers, bad: bytes) -> None:
    server = servers.protected
    status, headers, _ = exchange(server, b"GET /admin HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                  b"Cookie: csrftoken=" + bad + b"\r\nConnection: close\r\n\r\n")
    assert status == 200
    token = headers["set-cookie"].split(";")[0].partition("=")[2]  # a valid one replaces it
    for cookie, sent in ((bad, bad), (token.encode(), bad)):
        body = b"{}"
        status, headers, payload = exchange(
            server, b"POST /json HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: csrftoken=" + cookie
            + b"\r\nX-CSRF-Token: " + sent + b"\r\nContent-Type: application/json\r\n"
            b"Content-Length: 2\r\nConnection: close\r\n\r\n", body)
        assert status == 403, payload
        assert headers["content-type"] == "application/problem+json"
