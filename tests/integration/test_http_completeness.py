"""Forms, files, static files, streaming and SSE behind a real uvicorn, checked over sockets.

The server is this very file run as a script (``python test_http_completeness.py serve FD
DIR``): a small raw ASGI app using Joey's pieces directly, on a socket the test process bound
to a free 127.0.0.1 port and handed over (no race for the port). It runs in its own process so
its memory can be measured alone, and it reports what its generators did at ``/state``.

``JOEY_UPLOAD_MIB`` sets the size of the large upload (default 1024, i.e. 1 GiB).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from joey.exceptions import HTTPError, NotFound
from joey.files import FileResponse
from joey.forms import FormLimits, UploadFile, parse_form
from joey.responses import JSONResponse, ProblemResponse, Response, StreamingResponse
from joey.sse import EventSourceResponse, ServerSentEvent
from joey.staticfiles import StaticFiles
from joey.types import Receive, Scope, Send

UPLOAD_MIB = int(os.environ.get("JOEY_UPLOAD_MIB", "1024"))
CHUNK = 64 * 1024

# --------------------------------------------------------------------------------------------
# The server side (runs in the subprocess)
# --------------------------------------------------------------------------------------------


def _memory() -> dict[str, int]:
    """This process's current and peak resident memory, in KiB (Linux)."""
    found: dict[str, int] = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0])
    return found


class TestServerApp:
    """Routes by path prefix; what the generators did is kept in ``state`` by token."""

    __test__ = False  # not a test class, despite the name pytest would collect

    def __init__(self, root: str) -> None:
        self.root = root
        self.static = StaticFiles(os.path.join(root, "site"), html=True)
        self.state: dict[str, dict[str, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
        try:
            if path == "/static" or path.startswith("/static/"):
                # What the core's app.mount does (the ASGI spec's way): root_path grows by the
                # prefix and path stays whole.
                mounted = {**scope, "root_path": scope.get("root_path", "") + "/static"}
                await self.static(mounted, receive, send)
                return
            handler = getattr(self, "route_" + path.strip("/").replace("-", "_"), None)
            if handler is None:
                raise NotFound()
            await handler(scope, receive, send, query)
        except HTTPError as error:
            await ProblemResponse.from_error(error)(scope, receive, send)

    async def route_state(self, scope: Scope, receive: Receive, send: Send,
                          query: dict[str, str]) -> None:
        await JSONResponse({**self.state.get(query["token"], {}), "memory": _memory()})(
            scope, receive, send)

    async def route_stream(self, scope: Scope, receive: Receive, send: Send,
                           query: dict[str, str]) -> None:
        record = self.state.setdefault(query["token"], {"produced": 0, "stopped": None})
        size = int(query.get("size", CHUNK))

        async def produce() -> AsyncIterator[bytes]:
            chunk = b"x" * size
            try:
                while True:
                    record["produced"] += 1
                    yield chunk
                    await asyncio.sleep(0)
            except asyncio.CancelledError:
                record["stopped"] = "cancelled"
                raise
            except GeneratorExit:
                record["stopped"] = "closed"
                raise

        await StreamingResponse(produce(), media_type="application/octet-stream")(
            scope, receive, send)

    async def route_events(self, scope: Scope, receive: Receive, send: Send,
                           query: dict[str, str]) -> None:
        record = self.state.setdefault(query["token"], {"stopped": None})
        count = int(query.get("count", "3"))

        async def events() -> AsyncIterator[ServerSentEvent | dict[str, Any] | str]:
            try:
                yield ServerSentEvent("first line\nsecond line", event="note", id="1")
                yield {"data": {"n": 2}, "id": "2"}
                for i in range(3, count + 1):
                    yield ServerSentEvent(f"event {i}", id=str(i))
                await asyncio.sleep(3600)  # then idle: only pings from here on
            except asyncio.CancelledError:
                record["stopped"] = "cancelled"
                raise

        ping = float(query.get("ping", "0.2"))
        await EventSourceResponse(events(), ping_interval=ping)(scope, receive, send)

    async def route_sse_page(self, scope: Scope, receive: Receive, send: Send,
                             query: dict[str, str]) -> None:
        page = """<!doctype html><html><body><pre id="log"></pre><script>
        const log = document.getElementById("log");
        const source = new EventSource("/events?token=browser&count=4&ping=0.1");
        let seen = 0;
        source.addEventListener("note", (e) => { log.textContent += "note:" + e.data + "|"
            + e.lastEventId + "\\n"; });
        source.onmessage = (e) => {
            log.textContent += "message:" + e.data + "|" + e.lastEventId + "\\n";
            if (++seen === 3) { source.close(); log.textContent += "DONE\\n"; }
        };
        </script></body></html>"""
        await Response(page, media_type="text/html")(scope, receive, send)

    async def route_file(self, scope: Scope, receive: Receive, send: Send,
                         query: dict[str, str]) -> None:
        await FileResponse(os.path.join(self.root, "big.bin"))(scope, receive, send)

    async def route_upload(self, scope: Scope, receive: Receive, send: Send,
                           query: dict[str, str]) -> None:
        headers = dict(scope["headers"])
        limits = FormLimits(max_part_size=4 * 1024**3, max_total_size=4 * 1024**3,
                            max_fields=int(query.get("max_fields", "1000")))

        async def body() -> AsyncIterator[bytes]:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise OSError("client went away")
                yield message.get("body", b"")
                if not message.get("more_body"):
                    return

        before = _memory()
        form = await parse_form(headers.get(b"content-type", b"").decode("latin-1"), body(),
                                limits)
        files = []
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                await value.seek(0, 2)
                files.append({"name": name, "size": value.size,
                              "position": await value.seek(0, 1),
                              "in_memory": value.in_memory})
        fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        await form.close()
        after = _memory()
        await JSONResponse({"fields": fields, "files": files, "before": before,
                            "after": after, "closed": all(f.closed for f in form.files())})(
            scope, receive, send)


def _serve(fd: int, root: str) -> None:  # pragma: no cover - runs in the server process
    import uvicorn

    config = uvicorn.Config(TestServerApp(root), fd=fd, log_level="warning", lifespan="off")
    uvicorn.Server(config).run()


# --------------------------------------------------------------------------------------------
# The test side
# --------------------------------------------------------------------------------------------


class Server:
    def __init__(self, process: subprocess.Popen[bytes], port: int, root: Path) -> None:
        self.process = process
        self.port = port
        self.root = root
        self.url = f"http://127.0.0.1:{port}"

    def state(self, token: str) -> dict[str, Any]:
        result: dict[str, Any] = httpx.get(f"{self.url}/state?token={token}").json()
        return result

    def wait_for(self, token: str, key: str, timeout: float = 5.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.state(token).get(key)
            if value:
                return value
            time.sleep(0.02)
        raise AssertionError(f"{token}: {key} never set: {self.state(token)}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("http-completeness")
    site = root / "site"
    (site / "docs").mkdir(parents=True)
    (site / "hello.txt").write_text("hello")
    (site / "index.html").write_text("<h1>home</h1>")
    (site / "docs" / "index.html").write_text("<h1>docs</h1>")
    (root / "secret.txt").write_text("TOP SECRET")
    (site / "escape.txt").symlink_to(root / "secret.txt")
    (root / "big.bin").write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    uploads = root / "uploads"
    uploads.mkdir()

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port = listener.getsockname()[1]
    log = (root / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, __file__, "serve", str(listener.fileno()), str(root)],
        pass_fds=[listener.fileno()], stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "TMPDIR": str(uploads), "PYTHONUNBUFFERED": "1"},
    )
    listener.close()  # the server process holds its own copy
    started = Server(process, port, root)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{started.url}/state?token=ready", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((root / "server.log").read_text()) from None
                time.sleep(0.05)
        yield started
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            process.kill()
            process.wait(5)
        log.close()


def raw_request(server: Server, target: bytes, extra: bytes = b"") -> tuple[int, bytes]:
    """Send a request line exactly as given (httpx would normalise the path)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra
                     + b"Connection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2]


# --- static files ----------------------------------------------------------------------------

def test_static_files_serve_and_redirect(server: Server) -> None:
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/static/hello.txt").text == "hello"
        redirect = client.get("/static/docs")
        assert redirect.status_code == 307 and redirect.headers["location"] == "docs/"
        assert client.get("/static/docs", follow_redirects=True).text == "<h1>docs</h1>"
        assert client.get("/static", follow_redirects=True).text == "<h1>home</h1>"
        assert client.post("/static/hello.txt").status_code == 405


@pytest.mark.parametrize(
    "target",
    [
        b"/static/../secret.txt", b"/static/../../secret.txt", b"/static/%2e%2e/secret.txt",
        b"/static/..%2fsecret.txt", b"/static/%2e%2e%2fsecret.txt", b"/static/..%5csecret.txt",
        b"/static/..\\secret.txt", b"/static/docs/..%2f..%2fsecret.txt",
        b"/static//etc/passwd", b"/static/C:/Windows/win.ini", b"/static/escape.txt",
        b"/static/%00", b"/static/hello.txt%00.html", b"/static/%ff", b"/static/.%2e/secret.txt",
        b"/static/" + str(Path(tempfile.gettempdir()) / "secret.txt").encode(),
    ],
)
def test_static_files_have_no_way_out(server: Server, target: bytes) -> None:
    status, body = raw_request(server, target)
    assert status in (400, 404), (target, status)
    assert b"SECRET" not in body


# --- ranges ---------------------------------------------------------------------------------

def test_range_requests_and_abuse(server: Server) -> None:
    content = bytes(range(256)) * 4096
    with httpx.Client(base_url=server.url) as client:
        one = client.get("/file", headers={"range": "bytes=1000-1999"})
        assert one.status_code == 206 and one.content == content[1000:2000]
        assert one.headers["content-range"] == f"bytes 1000-1999/{len(content)}"

        two = client.get("/file", headers={"range": "bytes=0-0,-1"})
        assert two.status_code == 206
        assert two.headers["content-type"].startswith("multipart/byteranges; boundary=")
        assert int(two.headers["content-length"]) == len(two.content) < 400

        # The same megabyte asked for 15 times: merged, so sent once.
        overlap = ",".join(["0-1048575"] * 15)
        merged = client.get("/file", headers={"range": f"bytes={overlap}"})
        assert merged.status_code == 206 and len(merged.content) == len(content)

        # Thousands of one-byte ranges: ignored, the file goes out once, whole.
        many = ",".join(f"{i * 3}-{i * 3}" for i in range(2000))
        flood = client.get("/file", headers={"range": f"bytes={many}"})
        assert flood.status_code == 200 and flood.content == content

        gone = client.get("/file", headers={"range": "bytes=99999999-"})
        assert gone.status_code == 416
        assert gone.headers["content-range"] == f"bytes */{len(content)}"

        etag = one.headers["etag"]
        assert client.get("/file", headers={"if-none-match": etag}).status_code == 304
        stale = client.get("/file", headers={"range": "bytes=0-9", "if-range": '"old"'})
        assert stale.status_code == 200


# --- streaming ------------------------------------------------------------------------------

def test_streaming_stops_when_the_client_hangs_up(server: Server) -> None:
    with httpx.Client(base_url=server.url) as client, client.stream(
        "GET", "/stream?token=hangup&size=1024"
    ) as response:
        received = 0
        for chunk in response.iter_raw():
            received += len(chunk)
            if received > 100_000:
                break
    assert server.wait_for("hangup", "stopped") in ("cancelled", "closed")
    produced = server.state("hangup")["produced"]
    time.sleep(0.3)
    assert server.state("hangup")["produced"] == produced  # nothing more after the hang-up


def test_slow_client_holds_the_producer_back(server: Server) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(b"GET /stream?token=slow HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        samples = []
        started = time.monotonic()
        next_sample = started + 0.75
        read = 0
        while time.monotonic() - started < 1.5:
            read += len(sock.recv(1))  # one byte per millisecond
            time.sleep(0.001)
            if time.monotonic() >= next_sample:
                samples.append(server.state("slow")["produced"])
                next_sample += 0.75
    finally:
        sock.close()
    first, last = samples[0], samples[-1]
    # Unbounded, a 64 KiB producer makes thousands of chunks a second. Held back, it stops
    # once the socket buffers (a few MiB at most) are full, and stays there.
    assert last * CHUNK < 32 * 1024 * 1024, samples
    assert last - first <= 2, samples
    assert read < 3000
    assert server.wait_for("slow", "stopped") in ("cancelled", "closed")


# --- server-sent events -----------------------------------------------------------------------

def test_sse_with_a_real_client(server: Server) -> None:
    events: list[dict[str, str]] = []
    pings = 0
    with httpx.Client(base_url=server.url, timeout=5) as client, client.stream(
        "GET", "/events?token=sse&count=3&ping=0.1"
    ) as response:
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        current: dict[str, str] = {}
        for line in response.iter_lines():
            if line == ": ping":
                pings += 1
                if pings == 2:
                    break
            elif line == "":
                if current:
                    events.append(current)
                current = {}
            elif not line.startswith(":"):
                field, _, value = line.partition(": ")
                current[field] = current[field] + "\n" + value if field in current else value
    assert events == [
        {"event": "note", "data": "first line\nsecond line", "id": "1"},
        {"data": '{"n":2}', "id": "2"},
        {"data": "event 3", "id": "3"},
    ]
    assert server.wait_for("sse", "stopped") == "cancelled"


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_sse_in_headless_chromium(server: Server, tmp_path: Path) -> None:
    result = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path}", "--dump-dom",
         "--virtual-time-budget=5000", f"{server.url}/sse-page"],
        capture_output=True, timeout=60, text=True,
    )
    log = re.search(r'<pre id="log">(.*?)</pre>', result.stdout, re.S)
    assert log is not None, result.stderr[-2000:]
    assert log.group(1).splitlines() == [
        "note:first line", "second line|1", 'message:{"n":2}|2', "message:event 3|3",
        "message:event 4|4", "DONE",
    ]
    assert server.wait_for("browser", "stopped") == "cancelled"


# --- forms ------------------------------------------------------------------------------------

BOUNDARY = "joeyIntegrationBoundary"


def test_large_upload_streams_to_disk_in_bounded_memory(server: Server) -> None:
    size = UPLOAD_MIB * 1024 * 1024
    block = os.urandom(1024 * 1024)

    def body() -> Iterator[bytes]:
        yield (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="title"\r\n\r\nbig\r\n'
               f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
               'filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n').encode()
        for _ in range(UPLOAD_MIB):
            yield block
        yield f"\r\n--{BOUNDARY}--\r\n".encode()

    with httpx.Client(base_url=server.url, timeout=120) as client:
        response = client.post(
            "/upload", content=body(),
            headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"},
        )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["fields"] == {"title": "big"}
    assert result["files"] == [{"name": "file", "size": size, "position": size,
                                "in_memory": False}]
    assert result["closed"] is True
    grown_kib = result["after"]["VmHWM"] - result["before"]["VmRSS"]
    assert grown_kib < 64 * 1024, result  # far below the upload size: streamed, not buffered
    assert list((server.root / "uploads").iterdir()) == []  # temporary files are gone


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        (b"".join(b"--%s\r\nContent-Disposition: form-data; name=\"f%d\"\r\n\r\nx\r\n"
                  % (BOUNDARY.encode(), i) for i in range(3000)) + b"--%s--\r\n"
         % BOUNDARY.encode(), 413, "more than 1000 fields"),
        (b"--%s\r\nContent-Disposition: form-data; name=\"essay\"\r\n\r\n" % BOUNDARY.encode()
         + b"x" * (3 * 1024 * 1024), 413, "send large content as a file"),
        (b"--%s\r\n" % BOUNDARY.encode() + b"X-Header: endless\r\n" * 20_000, 400, "eader"),
        (b"--%s\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a\"\r\n\r\n"
         % BOUNDARY.encode() + b"y" * 100_000, 400, "closing boundary"),
    ],
    ids=["tiny-fields", "huge-field", "endless-headers", "unterminated"],
)
def test_hostile_multipart_over_http(server: Server, body: bytes, status: int,
                                     detail: str) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        response = client.post(
            "/upload", content=body,
            headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"},
        )
    assert response.status_code == status
    assert detail in response.json()["detail"]
    assert list((server.root / "uploads").iterdir()) == []


def test_pathological_content_type_over_http(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        started = time.monotonic()
        response = client.post("/upload", content=b"x", headers={
            "content-type": "multipart/form-data; boundary=\"" + ";" * 20_000,
        })
        assert response.status_code == 400
        assert time.monotonic() - started < 2


if __name__ == "__main__" and sys.argv[1:2] == ["serve"]:  # pragma: no cover
    _serve(int(sys.argv[2]), sys.argv[3])
