"""CSRF: Origin / Sec-Fetch-Site and a signed double-submit token; in a real browser too."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path
from urllib.parse import quote

import pytest

from joey import App, Request
from joey.middleware.csrf import CSRFMiddleware, csrf_token
from joey.testing import TestClient
from joey.types import Message, Receive, Scope, Send
from tests.integration.servers import run_server, uvicorn_argv

from ..asgi import body_messages, call, close_test_clients, http_scope  # noqa: F401


def build(**options: object) -> CSRFMiddleware:
    app = App()

    @app.get("/form")
    async def form(request: Request) -> str:
        return csrf_token(request)

    @app.post("/save")
    async def save(request: Request) -> str:
        return (await request.body()).decode()

    @app.post("/webhooks/github")
    async def hook() -> str:
        return "ok"

    return CSRFMiddleware(app, secret="s3cret", exempt=["/webhooks/"],
                          **options)  # type: ignore[arg-type]


def test_token_cookie_is_issued_and_checked() -> None:
    with TestClient(build()) as client:
        first = client.get("/form")
        token = first.text
        assert first.headers["set-cookie"].startswith(f"csrftoken={token}; Path=/; SameSite=Lax")
        assert "set-cookie" not in client.get("/form").headers  # already has a valid one
        assert client.get("/form").text == token
        missing = client.post("/save", content=b"x")
        assert missing.status_code == 403
        assert missing.headers["content-type"] == "application/problem+json"
        assert client.post("/save", content=b"x", headers={"x-csrf-token": "nope"}
                           ).status_code == 403
        ok = client.post("/save", content=b"x", headers={"x-csrf-token": token})
        assert ok.status_code == 200
        form = client.post("/save", data={"csrf_token": token, "a": "1"})
        assert form.status_code == 200
        assert "a=1" in form.text  # the body reached the app unchanged
        multipart = client.post("/save", data={"csrf_token": token},
                                files={"f": ("a.txt", b"data")})
        assert multipart.status_code == 200
        assert client.post("/save", files={"f": ("a.txt", b"data")}).status_code == 403
        assert client.post("/webhooks/github").status_code == 200  # exempt


def test_cross_site_requests_are_refused_even_with_the_token() -> None:
    with TestClient(build(trusted_origins=["https://app.example.com"])) as client:
        token = client.get("/form").text
        good = {"x-csrf-token": token}
        assert client.post("/save", headers={**good, "origin": "https://evil.example"}
                           ).status_code == 403
        assert client.post("/save", headers={**good, "origin": "null"}).status_code == 403
        assert client.post("/save", headers={**good, "sec-fetch-site": "cross-site"}
                           ).status_code == 403
        assert client.post("/save", headers={**good, "origin": "http://testserver"}
                           ).status_code == 200
        assert client.post("/save", headers={**good, "origin": "https://app.example.com"}
                           ).status_code == 200
        assert client.post("/save", headers={**good, "sec-fetch-site": "same-origin"}
                           ).status_code == 200


def test_forged_cookie_and_oversized_form() -> None:
    with TestClient(build(max_form_size=100)) as client:
        client.cookies.set("csrftoken", "forged.value")
        refused = client.post("/save", headers={"x-csrf-token": "forged.value"})
        assert refused.status_code == 403
        token = client.get("/form").text  # a fresh, signed one replaces the forged cookie
        client.cookies.set("csrftoken", token)
        big = client.post("/save", data={"csrf_token": token, "x": "y" * 200})
        assert big.status_code == 413


# A cookie, header or form value is whatever bytes a client sends: non-ASCII text compared with
# hmac.compare_digest raised TypeError (a 500, for GET requests too).
NON_ASCII = ["abc.\u00e9", "\u00e9.\u00e9", "\u00e9", "x.\udcff", "\u00e9" * 40]


async def send(app: CSRFMiddleware, method: str, headers: list[tuple[bytes, bytes]],
               body: bytes = b"") -> tuple[int, dict[bytes, bytes]]:
    scope = http_scope("/save" if method == "POST" else "/form", method=method,
                       headers=[(b"host", b"testserver"), *headers])
    recorder = await call(app, scope, body_messages(body))
    return recorder.status, dict(recorder.headers)


def raw(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


@pytest.mark.parametrize("bad", NON_ASCII)
async def test_non_ascii_token_cookie_is_replaced_not_a_500(bad: str) -> None:
    app = build()
    status, headers = await send(app, "GET", [(b"cookie", b"csrftoken=" + raw(bad))])
    assert status == 200
    assert headers[b"set-cookie"].startswith(b"csrftoken=")  # a valid one replaces it
    status, _ = await send(app, "POST", [(b"cookie", b"csrftoken=" + raw(bad)),
                                         (b"x-csrf-token", raw(bad))])
    assert status == 403


@pytest.mark.parametrize("bad", NON_ASCII)
async def test_non_ascii_submitted_token_is_a_403(bad: str) -> None:
    app = build()
    token = app.new_token()
    cookie = (b"cookie", f"csrftoken={token}".encode())
    assert (await send(app, "POST", [cookie, (b"x-csrf-token", token.encode())]))[0] == 200
    assert (await send(app, "POST", [cookie, (b"x-csrf-token", raw(bad))]))[0] == 403
    form = (b"content-type", b"application/x-www-form-urlencoded")
    body = b"csrf_token=" + quote(raw(bad)).encode()
    assert (await send(app, "POST", [cookie, form], body))[0] == 403
    multipart = (b"content-type", b"multipart/form-data; boundary=b")
    body = (b'--b\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n'
            + raw(bad) + b"\r\n--b--\r\n")
    assert (await send(app, "POST", [cookie, multipart], body))[0] == 403


def test_configuration() -> None:
    with pytest.raises(ValueError, match="needs a secret"):
        CSRFMiddleware(App(), secret="")
    app = App()

    @app.get("/")
    async def index(request: Request) -> str:
        return csrf_token(request)

    with TestClient(app) as client, pytest.raises(RuntimeError, match="needs CSRFMiddleware"):
        client.get("/")


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("chromium is needed for the browser test (apt-get install chromium)")
    return found


def test_in_headless_chromium_cross_site_form_refused_same_site_works(
        tmp_path: Path) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    executable = _chromium()
    with run_server(uvicorn_argv("tests.security.csrf_app:app"), tmp_path) as site:
        # another site: "localhost" is not the same site as "127.0.0.1"
        target = {"TARGET": site.base_url}
        with run_server(uvicorn_argv("tests.security.csrf_app:attacker"), tmp_path,
                        env=target) as evil, playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=executable, headless=True,
                                        args=["--no-sandbox"])
            try:
                page = browser.new_page()
                page.goto(site.base_url + "/")
                with page.expect_navigation():
                    page.evaluate("document.getElementById('f').submit()")
                assert page.inner_text("#done") == "sent 5 for ann"
                page.goto(f"http://localhost:{evil.port}/")
                with page.expect_navigation():
                    page.evaluate("document.getElementById('f').submit()")
                assert "Cross-site request refused" in page.content()
            finally:
                browser.close()
        import httpx

        assert httpx.get(site.base_url + "/transfers").json() == ["5"]


@pytest.mark.parametrize("kind", ["urlencoded", "multipart"])
@pytest.mark.parametrize("chunks", [1, 2])
async def test_a_form_cut_off_by_a_disconnect_is_never_handed_on_as_complete(
        kind: str, chunks: int) -> None:
    # Found by tests/fuzz: the middleware read the form for its token and handed what it had
    # to the app as a complete body: "amount=1000000" cut off became a transfer of "100".
    seen: list[Message] = []
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            seen.append(message)
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        if message["type"] == "http.request":  # a complete body: the transfer would happen
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"sent"})

    middleware = CSRFMiddleware(app, secret="s3cret")
    token = middleware.new_token()
    if kind == "urlencoded":
        content_type = b"application/x-www-form-urlencoded"
        body = f"csrf_token={token}&amount=1000000".encode()
    else:
        content_type = b"multipart/form-data; boundary=b"
        body = (b'--b\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n'
                + token.encode() + b'\r\n--b\r\nContent-Disposition: form-data; '
                b'name="amount"\r\n\r\n1000000\r\n--b--\r\n')
    cut = body[:body.index(b"1000000") + 3]  # "100": the client went away here
    pieces = [cut] if chunks == 1 else [cut[:20], cut[20:]]
    incoming: list[Message] = [{"type": "http.request", "body": piece, "more_body": True}
                               for piece in pieces]
    incoming.append({"type": "http.disconnect"})

    async def receive() -> Message:
        return incoming.pop(0)

    async def record(message: Message) -> None:
        sent.append(message)

    scope = http_scope("/save", method="POST", headers=[
        (b"cookie", f"csrftoken={token}".encode()), (b"content-type", content_type),
        (b"content-length", str(len(body)).encode())])
    await middleware(scope, receive, record)
    assert sent == []
    assert seen == [{"type": "http.request", "body": cut, "more_body": True},
                    {"type": "http.disconnect"}]


@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_under_uvicorn_a_form_cut_off_by_a_disconnect_never_reaches_the_route(
        tmp_path: Path, parser: str) -> None:
    import httpx

    with run_server(uvicorn_argv("tests.security.csrf_app:app", "--http", parser),
                    tmp_path) as site:
        page = httpx.get(site.base_url + "/")
        token = page.text.split('value="')[1].split('"')[0]
        cookie = f"csrftoken={page.cookies['csrftoken']}"
        body = f"csrf_token={token}&amount=1000000".encode()
        head = (f"POST /transfer HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        with socket.create_connection(("127.0.0.1", site.port), timeout=10) as sock:
            sock.sendall(head + body[:-4])  # "amount=100", then the client goes away
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(65536):  # until the server closes the connection
                pass
        # A whole transfer after it: once it is in, the cut-off one had its turn.
        done = httpx.post(site.base_url + "/transfer", headers={"cookie": cookie},
                          data={"csrf_token": token, "amount": "7"})
        assert done.status_code == 200, done.text
        assert httpx.get(site.base_url + "/transfers").json() == ["7"]
        assert "Traceback" not in site.output
