"""The debug error page: what ``App(debug=True)`` shows a browser for an unhandled error.

Called by the exception policy (:mod:`joey._engine.errors`) for a 500 only when the app is
in debug mode and the client prefers HTML (a browser's ``Accept: text/html``); API clients
keep the problem+json document. The page shows the exception (with its notes and the chain
of causes), each traceback frame with the source lines around it, the request (method, URL,
headers, with credentials masked) and the route that was serving it.

Everything taken from the request, the exception or the source is HTML-escaped, and the page
is sent with a ``Content-Security-Policy`` that allows no script at all, so neither a hostile
URL nor a hostile exception message can run code in the developer's browser.
"""

from __future__ import annotations

import html
import linecache
import traceback
from typing import Any

from joey.describe import describe
from joey.exceptions import BadRequest
from joey.requests import Request
from joey.responses import HTMLResponse

__all__ = ["debug_response", "prefers_html"]

#: source lines shown before and after the line of each frame
CONTEXT_LINES = 5
# Header values never shown: the page may be seen by someone looking over a shoulder.
_MASKED = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})
_HEADERS = {
    "cache-control": "no-store",
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#b3261e;color:#fff;padding:16px 24px}
header h1{margin:0;font-size:20px}header p{margin:6px 0 0;white-space:pre-wrap}
section{padding:8px 24px}h2{font-size:16px;border-bottom:1px solid #ddd}
.frame{background:#fff;border:1px solid #ddd;margin:8px 0;border-radius:4px}
.frame h3{margin:0;padding:6px 10px;font-size:13px;background:#eee;font-weight:normal}
.frame.user h3{background:#e3ecfa}
pre{margin:0;padding:6px 10px;overflow-x:auto;font:12px/1.5 ui-monospace,monospace}
.line{display:block}.line.current{background:#fde2e0}
table{border-collapse:collapse}td{padding:2px 12px 2px 0;vertical-align:top}
td:first-child{color:#666;white-space:nowrap}
"""


def prefers_html(request: Request) -> bool:
    """Whether the client asks for HTML before JSON: a browser, not an API client.

    ``Accept: text/html`` with a quality at least that of ``application/json`` (or of
    ``application/problem+json``) does; ``*/*``, no ``Accept`` and JSON-first do not.
    """
    accept = request.headers.get("accept", "").lower()
    if "html" not in accept:
        return False
    html_q = json_q = 0.0
    for item in accept.split(","):
        media_type, _, params = item.partition(";")
        media_type = media_type.strip()
        quality = _quality(params)
        if media_type in ("text/html", "application/xhtml+xml"):
            html_q = max(html_q, quality)
        elif media_type in ("application/json", "application/problem+json"):
            json_q = max(json_q, quality)
    return html_q > 0 and html_q >= json_q


def _quality(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip() == "q":
            try:
                return min(max(float(value), 0.0), 1.0)
            except ValueError:
                return 0.0
    return 1.0


def debug_response(request: Request, exc: BaseException, route: Any | None) -> HTMLResponse:
    """The 500 page for ``exc``, raised while serving ``request`` (by ``route``, if known)."""
    title = f"{type(exc).__name__} at {request.method} {request.path}"
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<header><h1>{_e(type(exc).__qualname__)}</h1><p>{_e(_message(exc))}</p></header>",
        _route_section(route),
        _traceback_section(exc),
        _request_section(request),
        "</body></html>",
    ]
    return HTMLResponse("".join(parts), status_code=500, headers=_HEADERS)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _message(exc: BaseException) -> str:
    lines = [str(exc)] if str(exc) else []
    lines.extend(str(note) for note in getattr(exc, "__notes__", ()))
    return "\n".join(lines)


def _route_section(route: Any | None) -> str:
    if route is None:
        return ("<section><h2>Route</h2><p>No route: the error came from middleware or from "
                "sending the response.</p></section>")
    rows = [
        ("Path", route.path),
        ("Methods", ", ".join(route.methods)),
        ("Name", route.name),
        ("Handler", describe(route.endpoint)),
    ]
    return "<section><h2>Route</h2>" + _table(rows) + "</section>"


def _traceback_section(exc: BaseException) -> str:
    chain: list[tuple[BaseException, str]] = []
    current: BaseException | None = exc
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if current.__cause__ is not None:
            link = "The above exception was the direct cause of the following exception:"
            nxt: BaseException | None = current.__cause__
        elif current.__context__ is not None and not current.__suppress_context__:
            link = "During handling of the above exception, another exception occurred:"
            nxt = current.__context__
        else:
            link, nxt = "", None
        chain.append((current, link))
        current = nxt
    parts = ["<section><h2>Traceback</h2><p>Most recent call last.</p>"]
    for error, link in reversed(chain):  # the first cause first, as Python prints them
        if link:
            parts.append(f"<p><em>{_e(link)}</em></p>")
        parts.append(f"<h3>{_e(type(error).__qualname__)}: {_e(_message(error))}</h3>")
        parts.extend(_frame(frame) for frame in traceback.extract_tb(error.__traceback__))
    parts.append("</section>")
    return "".join(parts)


def _frame(frame: traceback.FrameSummary) -> str:
    lineno = frame.lineno or 0
    user = "site-packages" not in frame.filename and "/joey/" not in frame.filename
    heading = f"{_e(frame.filename)}, line {lineno}, in <code>{_e(frame.name)}</code>"
    lines = []
    for number in range(max(1, lineno - CONTEXT_LINES), lineno + CONTEXT_LINES + 1):
        text = linecache.getline(frame.filename, number)  # "" past the end, or no source
        if text:
            current = " current" if number == lineno else ""
            lines.append(f'<span class="line{current}">{number:>5}  {_e(text.rstrip())}</span>')
    kind = "frame user" if user else "frame"
    return f'<div class="{kind}"><h3>{heading}</h3><pre>{"".join(lines)}</pre></div>'


def _request_section(request: Request) -> str:
    client = request.client
    rows = [
        ("Method", request.method),
        ("URL", _url(request)),
        ("Client", f"{client.host}:{client.port}" if client else "-"),
        *(("Query: " + name, value) for name, value in request.query_params.multi_items()),
        *(("Header: " + name, "(masked)" if name.lower() in _MASKED else value)
          for name, value in request.headers.items()),
    ]
    return "<section><h2>Request</h2>" + _table(rows) + "</section>"


def _url(request: Request) -> str:
    try:
        return str(request.url)
    except BadRequest as exc:  # more than one Host: no URL to show, and no second error
        return f"{request.path} ({exc.detail})"


def _table(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><td>{_e(name)}</td><td>{_e(value)}</td></tr>" for name, value in rows)
    return f"<table>{body}</table>"
