"""StaticFiles over ASGI in memory: serving, html mode, mounting conventions, and escapes."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from joey.staticfiles import StaticFiles
from joey.types import Message


class Result:
    def __init__(self, messages: list[Message]) -> None:
        self.status: int = messages[0]["status"]
        self.headers = {k.decode(): v.decode() for k, v in messages[0]["headers"]}
        self.body = b"".join(m.get("body", b"") for m in messages[1:])


async def request(app: StaticFiles, raw_path: bytes, *, method: str = "GET",
                  root_path: str = "", strip: bool = True, query: bytes = b"",
                  headers: list[tuple[bytes, bytes]] | None = None) -> Result:
    """Build the scope a server would, from the raw path a client sent.

    ``strip=True`` follows the mount convention where ``path`` excludes ``root_path``;
    ``strip=False`` the one where ``path`` still starts with it.
    """
    path = unquote(raw_path.decode("latin-1"), errors="surrogateescape")
    if strip and root_path and path.startswith(root_path):
        path = path[len(root_path):]
    scope: dict[str, Any] = {
        "type": "http", "method": method, "path": path, "raw_path": raw_path,
        "root_path": root_path, "query_string": query, "headers": headers or [],
    }
    messages: list[Message] = []

    async def receive() -> Message:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")  # pragma: no cover

    async def send(message: Message) -> None:
        messages.append(message)

    await app(scope, receive, send)
    return Result(messages)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "docs" / "empty").mkdir(parents=True)
    (root / "hello.txt").write_text("hello")
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "404.html").write_text("<h1>lost</h1>")
    (root / "docs" / "index.html").write_text("<h1>docs</h1>")
    (root / "docs" / "a b ü.txt").write_text("spaced")
    (root / "%2e%2e").write_text("a file literally named %2e%2e")
    (tmp_path / "secret.txt").write_text("TOP SECRET")
    (root / "inside-link.txt").symlink_to(root / "hello.txt")
    (root / "outside-link.txt").symlink_to(tmp_path / "secret.txt")
    (root / "outside-dir").symlink_to(tmp_path, target_is_directory=True)
    return root


async def test_serves_a_file_with_cache_headers(site: Path) -> None:
    result = await request(StaticFiles(site), b"/hello.txt")
    assert result.status == 200 and result.body == b"hello"
    assert result.headers["content-type"] == "text/plain; charset=utf-8"
    assert result.headers["cache-control"] == "public, max-age=3600"
    assert "etag" in result.headers and "last-modified" in result.headers


async def test_conditional_and_range_work_through_static_files(site: Path) -> None:
    app = StaticFiles(site, cache_control=None)
    first = await request(app, b"/hello.txt")
    assert "cache-control" not in first.headers
    again = await request(app, b"/hello.txt",
                          headers=[(b"if-none-match", first.headers["etag"].encode())])
    assert again.status == 304
    part = await request(app, b"/hello.txt", headers=[(b"range", b"bytes=1-3")])
    assert part.status == 206 and part.body == b"ell"


async def test_percent_encoded_and_unicode_names(site: Path) -> None:
    result = await request(StaticFiles(site), b"/docs/a%20b%20%C3%BC.txt")
    assert result.status == 200 and result.body == b"spaced"
    literal = await request(StaticFiles(site), b"/%252e%252e")  # decoded once: "%2e%2e"
    assert literal.status == 200 and literal.body.startswith(b"a file literally")


async def test_head_and_methods(site: Path) -> None:
    head = await request(StaticFiles(site), b"/hello.txt", method="HEAD")
    assert head.status == 200 and head.body == b"" and head.headers["content-length"] == "5"
    post = await request(StaticFiles(site), b"/hello.txt", method="POST")
    assert post.status == 405 and post.headers["allow"] == "GET, HEAD"
    assert json.loads(post.body)["status"] == 405


async def test_missing_and_directories_without_html(site: Path) -> None:
    app = StaticFiles(site)
    for path in (b"/nope.txt", b"/docs", b"/docs/", b"/", b"/hello.txt/", b"/hello.txt/x"):
        result = await request(app, path)
        assert result.status == 404, path
        assert result.headers["content-type"] == "application/problem+json"


async def test_html_mode_index_redirect_and_404_page(site: Path) -> None:
    app = StaticFiles(site, html=True)
    home = await request(app, b"/")
    assert home.status == 200 and home.body == b"<h1>home</h1>"
    docs = await request(app, b"/docs/")
    assert docs.body == b"<h1>docs</h1>"
    redirect = await request(app, b"/docs", query=b"v=1")
    assert redirect.status == 307 and redirect.headers["location"] == "docs/?v=1"
    lost = await request(app, b"/nope")
    assert lost.status == 404 and lost.body == b"<h1>lost</h1>"
    assert "cache-control" not in lost.headers
    no_index = await request(app, b"/docs/empty/")
    assert no_index.status == 404 and no_index.body == b"<h1>lost</h1>"


async def test_html_mode_without_404_page(site: Path) -> None:
    (site / "404.html").unlink()
    result = await request(StaticFiles(site, html=True), b"/nope")
    assert result.status == 404 and result.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(("raw_path", "root_path", "strip", "location"), [
    (b"/static", "/static", True, "static/"),
    (b"/static", "/static", False, "static/"),
    (b"/static/docs", "/static", True, "docs/"),
    (b"/static/we%20ird:dir", "/static", True, "./we%20ird:dir/"),
])
async def test_redirect_is_relative(site: Path, raw_path: bytes, root_path: str, strip: bool,
                                    location: str) -> None:
    (site / "we ird:dir").mkdir()
    result = await request(StaticFiles(site, html=True), raw_path, root_path=root_path,
                           strip=strip)
    assert result.status == 307 and result.headers["location"] == location


async def test_redirect_without_raw_path(site: Path) -> None:
    scope = {"type": "http", "method": "GET", "path": "/docs", "root_path": "/s",
             "query_string": b"", "headers": []}
    messages: list[Message] = []

    async def send(message: Message) -> None:
        messages.append(message)

    await StaticFiles(site, html=True)(scope, _never, send)
    assert dict(messages[0]["headers"])[b"location"] == b"docs/"


async def _never() -> Message:
    await asyncio.sleep(3600)
    raise AssertionError("unreachable")  # pragma: no cover


@pytest.mark.parametrize("strip", [True, False])
async def test_mounted_under_a_prefix_either_convention(site: Path, strip: bool) -> None:
    app = StaticFiles(site)
    result = await request(app, b"/static/hello.txt", root_path="/static", strip=strip)
    assert result.status == 200 and result.body == b"hello"
    # A directory named like the mount is not confused with the mount itself.
    (site / "static").mkdir()
    (site / "static" / "x.txt").write_text("nested")
    nested = await request(app, b"/static/static/x.txt", root_path="/static", strip=strip)
    assert nested.body == b"nested"


async def test_prefix_must_end_at_a_segment(site: Path) -> None:
    (site / "staticfoo").write_text("foo")
    scope_path = "/staticfoo"
    scope = {"type": "http", "method": "GET", "path": scope_path, "root_path": "/static",
             "headers": []}
    messages: list[Message] = []

    async def send(message: Message) -> None:
        messages.append(message)

    await StaticFiles(site)(scope, _never, send)
    assert messages[0]["status"] == 200


@pytest.mark.parametrize(
    "raw_path",
    [
        b"/../secret.txt", b"/docs/../../secret.txt", b"/%2e%2e/secret.txt", b"/%2E%2E/secret.txt",
        b"/..%2fsecret.txt", b"/..%2Fsecret.txt", b"/docs%2f..%2f..%2fsecret.txt",
        b"/..\\secret.txt", b"/..%5csecret.txt", b"/%5C..%5Csecret.txt", b"/.%2e/secret.txt",
        b"/C:/Windows/win.ini", b"/c:secret.txt", b"/outside-link.txt",
        b"/outside-dir/secret.txt", b"/docs/..", b"/docs/../..",
    ],
)
async def test_no_way_out_is_404(site: Path, raw_path: bytes) -> None:
    result = await request(StaticFiles(site), raw_path)
    assert result.status == 404, raw_path
    assert b"SECRET" not in result.body


@pytest.mark.parametrize("raw_path", [b"/hello.txt%00.png", b"/%00", b"/%ff%fe", b"/a%c3"])
async def test_nul_and_invalid_encoding_are_400(site: Path, raw_path: bytes) -> None:
    result = await request(StaticFiles(site), raw_path)
    assert result.status == 400, raw_path


async def test_checks_the_decoded_path_without_raw_path(site: Path) -> None:
    for path, status in [("/a\x00b", 400), ("/\udcff", 400), ("/../secret.txt", 404),
                         ("//etc/passwd", 404), ("/./hello.txt", 200), ("//hello.txt", 200)]:
        scope = {"type": "http", "method": "GET", "path": path, "headers": []}
        messages: list[Message] = []

        async def send(message: Message, into: list[Message] = messages) -> None:
            into.append(message)

        await StaticFiles(site)(scope, _never, send)
        assert messages[0]["status"] == status, path


async def test_absolute_path_stays_inside(site: Path, tmp_path: Path) -> None:
    result = await request(StaticFiles(site), str(tmp_path / "secret.txt").encode())
    assert result.status == 404


async def test_symlinks_inside_are_served(site: Path) -> None:
    result = await request(StaticFiles(site), b"/inside-link.txt")
    assert result.status == 200 and result.body == b"hello"


async def test_follow_symlinks_allows_outside_targets(site: Path) -> None:
    app = StaticFiles(site, follow_symlinks=True)
    assert (await request(app, b"/outside-link.txt")).body == b"TOP SECRET"
    assert (await request(app, b"/../secret.txt")).status == 404  # still no ".."


async def test_special_files_are_not_served(site: Path) -> None:
    os.mkfifo(site / "pipe")
    assert (await request(StaticFiles(site), b"/pipe")).status == 404


def test_missing_directory_is_a_startup_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="does not exist"):
        StaticFiles(tmp_path / "missing")
    app = StaticFiles(tmp_path / "later", check_dir=False)
    assert repr(app).startswith("StaticFiles(")


async def test_websocket_and_lifespan_scopes(site: Path) -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await StaticFiles(site)({"type": "websocket", "path": "/"}, _never, send)
    assert sent == [{"type": "websocket.close", "code": 1000}]

    incoming = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> Message:
        return next(incoming)

    sent.clear()
    await StaticFiles(site)({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete",
                                         "lifespan.shutdown.complete"]


async def test_through_httpx(site: Path) -> None:
    transport = httpx.ASGITransport(app=StaticFiles(site, html=True))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/docs/")
        assert response.text == "<h1>docs</h1>"
        response = await client.get("/hello.txt", headers={"range": "bytes=0-0,4-4"})
        assert response.status_code == 206
