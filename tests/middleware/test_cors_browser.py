"""CORSMiddleware against a real browser: headless Chromium, three loopback origins.

Page origin A runs ``fetch`` with credentials against origin B (which allows A) and origin C
(which does not), then writes what happened into the DOM; Chromium's ``--dump-dom`` hands the
DOM back to the test.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from joey.middleware import CORSMiddleware
from joey.types import ASGIApp, Receive, Scope, Send

from .helpers import free_port, serve

CHROMIUM = "/usr/bin/chromium"

PAGE = """<!doctype html>
<html><body><pre id="result">pending</pre>
<script>
async function attempt(url, options) {
  try {
    const response = await fetch(url, Object.assign({credentials: "include"}, options));
    return "ok " + response.status + " " + (await response.text());
  } catch (error) {
    return "failed " + error.name;
  }
}
(async () => {
  const results = {};
  results.set_cookie = await attempt("B/set");
  results.preflighted = await attempt("B/echo", {method: "PUT", headers: {"X-Token": "t1"}});
  results.disallowed_method = await attempt("B/echo", {method: "DELETE"});
  results.other_origin = await attempt("C/echo");
  results.other_origin_preflight = await attempt("C/echo", {method: "PUT",
                                                              headers: {"X-Token": "t1"}});
  document.getElementById("result").textContent = JSON.stringify(results);
})();
</script></body></html>
"""


def _chromium() -> str:
    if shutil.which("chromium") or Path(CHROMIUM).exists():
        return shutil.which("chromium") or CHROMIUM
    install = "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium"
    try:
        subprocess.run(["bash", "-c", install], check=True, capture_output=True, timeout=900)
    except (OSError, subprocess.SubprocessError):
        pytest.skip("chromium is not installed and apt-get install -y chromium failed")
    return CHROMIUM


def page_app(html: str) -> ASGIApp:
    body = html.encode()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return app


async def api_app(scope: Scope, receive: Receive, send: Send) -> None:
    """/set sets a cookie; /echo answers with the cookie and X-Token it received."""
    if scope["type"] != "http":
        return
    headers = dict(scope["headers"])
    extra: list[tuple[bytes, bytes]] = []
    if scope["path"] == "/set":
        extra.append((b"set-cookie", b"token=abc; Path=/; SameSite=Lax"))
        body = b"set"
    else:
        body = b"cookie=" + headers.get(b"cookie", b"-") + b" x-token=" + headers.get(
            b"x-token", b"-")
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode()), *extra]})
    await send({"type": "http.response.body", "body": body})


def test_credentialed_fetch_from_allowed_origin_only(tmp_path: Path) -> None:
    browser = _chromium()
    port_a, port_b, port_c = free_port(), free_port(), free_port()
    origin_a = f"http://127.0.0.1:{port_a}"
    html = PAGE.replace('"B/', f'"http://127.0.0.1:{port_b}/').replace(
        '"C/', f'"http://127.0.0.1:{port_c}/')
    b = CORSMiddleware(api_app, allow_origins=[origin_a], allow_methods=["GET", "PUT"],
                       allow_headers=["X-Token"], allow_credentials=True)
    c = CORSMiddleware(api_app, allow_origins=["http://127.0.0.1:1"], allow_methods=["GET", "PUT"],
                       allow_headers=["X-Token"], allow_credentials=True)
    with serve(page_app(html), port_a), serve(b, port_b), serve(c, port_c):
        result = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-extensions", "--disable-dev-shm-usage",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000",
             "--dump-dom", origin_a + "/"],
            capture_output=True, text=True, timeout=60, check=False,
        )
    match = re.search(r'<pre id="result">(.*?)</pre>', result.stdout, re.S)
    assert match, f"no result in the DOM; chromium said: {result.stderr[-2000:]}"
    results = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert results["set_cookie"] == "ok 200 set"
    # Preflight passed and the cookie set by the previous credentialed answer was sent.
    assert results["preflighted"] == "ok 200 cookie=token=abc x-token=t1"
    assert results["disallowed_method"] == "failed TypeError"
    assert results["other_origin"] == "failed TypeError"
    assert results["other_origin_preflight"] == "failed TypeError"
