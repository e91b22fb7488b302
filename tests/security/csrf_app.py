"""A cookie-authenticated form app behind CSRFMiddleware, for the browser test, and an
"attacker" app on another site that posts a form to it."""

from __future__ import annotations

import os
from typing import Annotated

from joey import App, Cookie, Form, HTMLResponse, Request
from joey.middleware.csrf import CSRFMiddleware, csrf_token

site = App()
transfers: list[str] = []


@site.get("/")
async def page(request: Request) -> HTMLResponse:
    response = HTMLResponse(
        '<form id="f" method="post" action="/transfer">'
        f'<input type="hidden" name="csrf_token" value="{csrf_token(request)}">'
        '<input name="amount" value="5"></form>')
    response.set_cookie("session", "ann", httponly=True)
    return response


@site.post("/transfer")
async def transfer(amount: Annotated[str, Form()],
                   session: Annotated[str, Cookie()] = "") -> HTMLResponse:
    transfers.append(amount)
    return HTMLResponse(f"<p id='done'>sent {amount} for {session or 'nobody'}</p>")


@site.get("/transfers")
async def done() -> list[str]:
    return transfers


app = CSRFMiddleware(site, secret=os.environ.get("CSRF_SECRET", "test-secret"))

attacker = App()


@attacker.get("/")
async def evil() -> HTMLResponse:
    target = os.environ.get("TARGET", "http://127.0.0.1:8000")
    return HTMLResponse(
        f'<form id="f" method="post" action="{target}/transfer">'
        '<input name="csrf_token" value="guess"><input name="amount" value="1000"></form>')
