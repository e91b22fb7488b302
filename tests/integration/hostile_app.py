"""An app for the hostile-request tests under real servers (tests/integration/test_hostile.py)."""

from __future__ import annotations

from typing import Annotated, Any

from joey import App, Body, HTTPError, Request, Response
from joey.middleware import HTTPSRedirectMiddleware
from joey.responses import JSONResponse

app = App()


@app.get("/admin")
async def admin() -> str:
    return "the admin page"


@app.get("/url")
async def url(request: Request) -> dict[str, Any]:
    return {"url": str(request.url), "host": request.url.hostname}


@app.post("/json")
async def raw_json(request: Request) -> dict[str, str]:
    await request.json()
    return {"ok": "yes"}


@app.post("/typed")
async def typed(body: Annotated[dict[str, Any], Body()]) -> dict[str, str]:
    return {"ok": "yes"}


# The same routes behind an exception handler that owns the error format.
custom = App()
custom.include_router(app.router)


@custom.exception_handler(HTTPError)
async def our_format(request: Request, exc: HTTPError) -> Response:
    return JSONResponse({"error": exc.detail, "status": exc.status_code},
                        status_code=exc.status_code)


redirecting = HTTPSRedirectMiddleware(app)
