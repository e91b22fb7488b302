"""The debug error page (joey._engine.debugpage): ``App(debug=True)`` shows browsers an HTML
page for an unhandled error (traceback with source lines, request, route), keeps problem+json
for API clients, escapes everything, and a non-debug app never shows a traceback; checked in
process, over real uvicorn (httptools and h11) and in headless Chromium."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from joey import App, CallNext, Request, Response
from joey._engine.debugpage import prefers_html
from joey.types import Message
from tests.integration.servers import run_server, uvicorn_argv

BROWSER_ACCEPT = ("text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,"
                  "image/webp,*/*;q=0.8")
XSS = '<script>document.title="pwned"</script><img src=x onerror=alert(1)>'


class InventoryError(Exception):
    pass


def make_app(debug: bool) -> App:
    app = App(debug=debug)

    def load_stock(sku: str) -> int:
        raise KeyError(sku)

    @app.get("/stock/{sku}", name="stock")
    async def stock(sku: str) -> dict[str, int]:
        try:
            return {"count": load_stock(sku)}  # the line that fails: marker-7c1e
        except KeyError as exc:
            raise InventoryError(f"no stock for {sku}") from exc

    @app.get("/context")
    async def context() -> str:
        try:
            return str(1 // 0)
        except ZeroDivisionError:
            return str({}["missing"])

    @app.get("/echo")
    async def echo(q: str = "") -> str:
        raise ValueError(q)

    @app.get("/fine")
    async def fine() -> str:
        return "fine"

    return app


def request_for(accept: str | None) -> Request:
    headers = [(b"accept", accept.encode())] if accept is not None else []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers,
                    "query_string": b""}, receive, app=App())


@pytest.mark.parametrize(("accept", "html_wanted"), [
    (BROWSER_ACCEPT, True),
    ("text/html", True),
    ("application/xhtml+xml", True),
    ("application/json, text/html;q=0.9", False),
    ("text/html;q=0.5, application/problem+json;q=0.4", True),
    ("text/html;q=0", False),
    ("text/html;q=bogus", False),
    ("TEXT/HTML; charset=utf-8; Q=1", True),
    ("*/*", False),
    ("application/json", False),
    ("", False),
    (None, False),
])
def test_who_gets_the_page(accept: str | None, html_wanted: bool) -> None:
    assert prefers_html(request_for(accept)) is html_wanted


def client(app: App) -> httpx.AsyncClient:
    # httpx's own transport: the response a server would send (no test-client raising).
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_the_page_shows_exception_source_request_and_route() -> None:
    async with client(make_app(debug=True)) as http:
        response = await http.get("/stock/A-1?verbose=yes", headers={
            "accept": BROWSER_ACCEPT, "authorization": "Bearer secret-token-1",
            "cookie": "session=secret-cookie-2", "x-trace": "t-42"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert response.headers["cache-control"] == "no-store"
    page = html.unescape(re.sub(r"<[^>]+>", "", response.text))
    # The exception, its cause, and the source around each frame, failing line included.
    assert "InventoryError" in page and "no stock for A-1" in page
    assert "KeyError: 'A-1'" in page
    traceback = section(response.text, "Traceback")
    cause = traceback.index("<h3>KeyError: &#x27;A-1&#x27;</h3>")
    link = traceback.index("The above exception was the direct cause of the following exception")
    assert cause < link < traceback.index("<h3>InventoryError: no stock for A-1</h3>")
    assert "# the line that fails: marker-7c1e" in page
    assert re.search(r'<span class="line current">\s*\d+  .*marker-7c1e', response.text)
    assert f"{__file__}, line" in page and "in load_stock" in page
    # The route and the request (their own sections: the source lines above show code too).
    route = section(response.text, "Route")
    assert "<td>Path</td><td>/stock/{sku}</td>" in route and "<td>Name</td><td>stock</td>" in route
    assert f"test_debugpage.make_app.&lt;locals&gt;.stock ({__file__}:" in route
    request = section(response.text, "Request")
    assert "<td>URL</td><td>http://test/stock/A-1?verbose=yes</td>" in request
    assert "<td>Query: verbose</td><td>yes</td>" in request
    assert "<td>Header: x-trace</td><td>t-42</td>" in request
    assert "<td>Header: authorization</td><td>(masked)</td>" in request
    # Credentials are masked.
    assert "secret-token-1" not in response.text and "secret-cookie-2" not in response.text
    assert "<td>Header: cookie</td><td>(masked)</td>" in request


def section(page: str, title: str) -> str:
    found = re.search(f"<section><h2>{title}</h2>(.*?)</section>", page, re.S)
    assert found is not None, f"no {title} section"
    return found.group(1)


async def test_an_exception_raised_while_handling_another_shows_both() -> None:
    async with client(make_app(debug=True)) as http:
        response = await http.get("/context", headers={"accept": "text/html"})
    traceback = section(response.text, "Traceback")
    first = traceback.index("<h3>ZeroDivisionError: integer division or modulo by zero</h3>")
    second = traceback.index("<h3>KeyError: &#x27;missing&#x27;</h3>")
    during = traceback.index("During handling of the above exception, another exception")
    assert first < during < second


async def test_api_clients_keep_problem_json_with_the_traceback() -> None:
    async with client(make_app(debug=True)) as http:
        for accept in ("application/json", "*/*", "application/json, text/html;q=0.5"):
            response = await http.get("/stock/A-1", headers={"accept": accept})
            assert response.status_code == 500
            assert response.headers["content-type"] == "application/problem+json"
            problem = response.json()
            assert problem["title"] == "Internal Server Error"
            assert "InventoryError: no stock for A-1" in problem["detail"]


async def test_everything_is_escaped() -> None:
    async with client(make_app(debug=True)) as http:
        response = await http.get("/echo", params={"q": XSS}, headers={
            "accept": "text/html", "x-evil": XSS})
    assert response.status_code == 500
    assert "<script>" not in response.text and "<img" not in response.text
    assert html.escape(XSS, quote=True) in response.text  # the message and the header
    assert response.text.count(html.escape(XSS, quote=True)) >= 2


async def test_middleware_errors_name_the_route_or_say_there_is_none() -> None:
    app = make_app(debug=True)

    @app.middleware
    async def broken(request: Request, call_next: CallNext) -> Response:
        raise RuntimeError("middleware <b>broke</b>")

    async with client(app) as http:
        routed = await http.get("/fine", headers={"accept": "text/html"})
        unrouted = await http.get("/nowhere", headers={"accept": "text/html"})
    assert routed.status_code == unrouted.status_code == 500
    assert "<td>Path</td><td>/fine</td>" in section(routed.text, "Route")
    assert "middleware &lt;b&gt;broke&lt;/b&gt;" in routed.text
    assert section(unrouted.text, "Route") == (
        "<p>No route: the error came from middleware or from sending the response.</p>")


async def test_a_catch_all_handler_still_decides() -> None:
    app = App(debug=True, exception_handlers={
        Exception: lambda request, exc: Response(b"custom", status_code=500)})

    @app.get("/")
    async def index() -> str:
        raise ValueError("x")

    async with client(app) as http:
        response = await http.get("/", headers={"accept": "text/html"})
    assert (response.status_code, response.text) == (500, "custom")


async def test_a_production_app_never_shows_a_traceback() -> None:
    async with client(make_app(debug=False)) as http:
        for accept in (BROWSER_ACCEPT, "application/json", "*/*"):
            response = await http.get("/stock/A-1", headers={"accept": accept})
            assert response.status_code == 500
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json() == {"type": "about:blank", "title": "Internal Server Error",
                                        "status": 500}


APP_MODULE = '''
from joey import App

app = App(debug={debug})


@app.get("/")
async def index() -> str:
    return "ok"


@app.get("/boom")
async def boom(q: str = "") -> str:
    raise LookupError("lost: " + q)  # boom-line-3f9a
'''


@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_over_real_http(http: str, tmp_path: Path) -> None:
    for debug in (True, False):
        module = f"debug_app_{str(debug).lower()}"
        (tmp_path / f"{module}.py").write_text(APP_MODULE.format(debug=debug), encoding="utf-8")
        argv = uvicorn_argv(f"{module}:app", "--app-dir", str(tmp_path), "--http", http)
        with run_server(argv, tmp_path) as server:
            page = httpx.get(server.base_url + "/boom", params={"q": "<i>x</i>"},
                             headers={"accept": BROWSER_ACCEPT}, timeout=10)
            api = httpx.get(server.base_url + "/boom", headers={"accept": "application/json"},
                            timeout=10)
        assert page.status_code == api.status_code == 500
        assert api.headers["content-type"] == "application/problem+json"
        if debug:
            assert page.headers["content-type"] == "text/html; charset=utf-8"
            assert "boom-line-3f9a" in page.text and "lost: &lt;i&gt;x&lt;/i&gt;" in page.text
            assert "Traceback" in api.json()["detail"]
        else:
            # Neither kind of client sees the traceback, the message or the source.
            for response in (page, api):
                assert response.headers["content-type"] == "application/problem+json"
                assert "detail" not in response.json()
                assert "lost" not in response.text and "boom-line" not in response.text
                assert "Traceback" not in response.text and ".py" not in response.text


def chromium() -> str:
    """Chromium from the system, installed with apt-get (as the CORS browser test does)."""
    found = shutil.which("chromium")
    if found is None:
        install = "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium"
        try:
            subprocess.run(["bash", "-c", install], check=True, capture_output=True, timeout=900)
        except (OSError, subprocess.SubprocessError):
            pytest.skip("chromium is not installed and apt-get install -y chromium failed")
        found = shutil.which("chromium") or "/usr/bin/chromium"
    return found


def test_in_headless_chromium(tmp_path: Path) -> None:
    browser = chromium()
    (tmp_path / "debug_app_true.py").write_text(APP_MODULE.format(debug=True), encoding="utf-8")
    argv = uvicorn_argv("debug_app_true:app", "--app-dir", str(tmp_path))
    payload = '<script>document.title="pwned"</script><img src=x onerror="document.title=1">'
    with run_server(argv, tmp_path) as server:
        url = str(httpx.URL(server.base_url + "/boom", params={"q": payload}))
        result = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-extensions", "--disable-dev-shm-usage",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000",
             "--dump-dom", url],
            capture_output=True, text=True, timeout=60, check=False,
        )
    dom = result.stdout
    assert "<header>" in dom, f"no page in the DOM; chromium said: {result.stderr[-2000:]}"
    title = re.search(r"<title>(.*?)</title>", dom, re.S)
    assert title is not None and title.group(1) == "LookupError at GET /boom"  # no script ran
    # The browser parsed the payload as text: no element came of it.
    assert "<script>document" not in dom and "<img" not in dom
    assert "&lt;script&gt;document.title" in dom
    assert "boom-line-3f9a" in dom and "Traceback" in dom
    assert re.search(r"<td>Header: accept</td><td>text/html", dom)
