"""An app for the hostile-request tests under real servers (tests/integration/test_hostile.py)."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, TypedDict

import msgspec
import pydantic

from joey import App, Body, HTTPError, Request, Response
from joey.middleware import HTTPSRedirectMiddleware
from joey.middleware.csrf import CSRFMiddleware
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


class Point(msgspec.Struct):
    x: int


@dataclasses.dataclass
class PointDC:
    x: int


class PointTD(TypedDict):
    x: int


class PointModel(pydantic.BaseModel):
    x: int


# One route per kind of body type (tests/integration/test_hostile.py posts deep JSON to each).
BODY_TYPES: dict[str, Any] = {
    "struct": Point, "structs": list[Point], "dataclass": PointDC, "typeddict": PointTD,
    "pydantic": PointModel, "union": Point | list[Point],
}


def _typed_routes(name: str, kind: Any) -> None:
    @app.post(f"/typed/{name}")
    async def whole(body: Annotated[kind, Body()]) -> str:
        return "ok"

    @app.post(f"/embedded/{name}")
    async def embedded(value: Annotated[kind, Body(embed=True)]) -> str:
        return "ok"


for _name, _kind in BODY_TYPES.items():
    _typed_routes(_name, _kind)


# The same routes behind an exception handler that owns the error format.
custom = App()
custom.include_router(app.router)


@custom.exception_handler(HTTPError)
async def our_format(request: Request, exc: HTTPError) -> Response:
    return JSONResponse({"error": exc.detail, "status": exc.status_code},
                        status_code=exc.status_code)


redirecting = HTTPSRedirectMiddleware(app)
protected = CSRFMiddleware(app, secret="hostile-tests")
