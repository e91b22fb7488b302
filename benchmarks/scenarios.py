"""The benchmark scenarios: what is requested, from which app, and what a right answer is.

Every framework's app module (``apps/*_app.py``) serves the same endpoints; the in-process worker
and the end-to-end driver both read this file, so a scenario is defined exactly once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

AppKind = Literal[
    "main", "routes", "prefixed", "middleware", "security", "ratelimit", "caching", "metrics",
    "tracing",
]

ITEM = {"name": "widget", "price": 9.5, "tags": ["a", "b"]}
WS_MESSAGE = "hello, websocket"
ROUTE_COUNTS = (20, 1_000, 10_000)
PREFIXED_RESOURCES = 100  # three routes each, all under /api/v1/
BEARER = b"Bearer bench-token"  # the token the security app's scheme accepts
PARAM_ID = 42


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    app: AppKind
    path: str
    method: str = "GET"
    query: str = ""
    body: bytes = b""
    content_type: str | None = None
    routes: int = 0  # for app == "routes": how many routes the app has
    websocket: bool = False
    status: int = 200
    text: str | None = None  # the exact expected body, when it is plain text
    json: Any = None  # the expected body, parsed, when it is JSON
    end_to_end: bool = False  # also measured under uvicorn + wrk
    headers: tuple[tuple[bytes, bytes], ...] = field(default=(), repr=False)

    @property
    def target(self) -> str:
        """The request target as a client would send it (path plus query)."""
        return f"{self.path}?{self.query}" if self.query else self.path


def catalog() -> list[dict[str, object]]:
    """What the catalog endpoints compute on every request they do not answer from a
    response cache: 100 items, built and then encoded as JSON by the framework."""
    return [{"id": i, "name": f"item {i}", "price": i * 1.25, "tags": ["a", "b"]}
            for i in range(100)]


def route_path(index: int) -> str:
    """The concrete path that reaches route number ``index`` of a routes app."""
    return f"/r{index}/items/{PARAM_ID}"


def route_body(index: int) -> str:
    return f"r{index}:{PARAM_ID}"


def _routes(n: int) -> Scenario:
    return Scenario(
        key=f"routes_{n}",
        title=f"last of {n:,} routes",
        app="routes",
        routes=n,
        path=route_path(n - 1),
        text=route_body(n - 1),
    )


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "plaintext", "plaintext GET", "main", "/plaintext", text="Hello, World!", end_to_end=True
    ),
    Scenario(
        "json", "JSON GET", "main", "/json", json={"message": "Hello, World!"}, end_to_end=True
    ),
    Scenario(
        "path_param",
        "path parameter /users/{id:int}",
        "main",
        f"/users/{PARAM_ID}",
        json={"id": PARAM_ID},
        end_to_end=True,
    ),
    Scenario(
        "query",
        "typed query /search?q=abc&limit=5",
        "main",
        "/search",
        query="q=abc&limit=5",
        json={"q": "abc", "limit": 5},
    ),
    Scenario(
        "post_json",
        "POST JSON body -> model -> echo",
        "main",
        "/items",
        method="POST",
        body=json.dumps(ITEM).encode(),
        content_type="application/json",
        json=ITEM,
    ),
    Scenario("not_found", "404", "main", "/does/not/exist", status=404),
    *(_routes(n) for n in ROUTE_COUNTS),
    # Issue 29: routes sharing their first segments (a tree's worst case, and what real APIs
    # look like): 300 routes under /api/v1/, a list, an item and a nested item per resource;
    # the last one is requested.
    Scenario(
        "prefixed_300",
        f"last of {3 * PREFIXED_RESOURCES} routes under /api/v1/",
        "prefixed",
        f"/api/v1/res{PREFIXED_RESOURCES - 1}/{PARAM_ID}/sub/7",
        routes=PREFIXED_RESOURCES,
        text=f"res{PREFIXED_RESOURCES - 1}:{PARAM_ID}:7",
    ),
    Scenario(
        "middleware",
        "3 no-op middlewares + plaintext",
        "middleware",
        "/plaintext",
        text="Hello, World!",
    ),
    Scenario("ws_echo", "WebSocket echo, per message", "main", "/ws", websocket=True),
    Scenario(
        "auth",
        "bearer token checked -> JSON",
        "security",
        "/me",
        json={"user": "bench"},
        headers=((b"authorization", BEARER),),
    ),
    Scenario(
        "rate_limited",
        "rate-limited (in memory) plaintext",
        "ratelimit",
        "/limited",
        text="Hello, World!",
    ),
    # Issue 27: a response cache (each framework's own, in memory) against the same route
    # computing its answer every time.
    Scenario("catalog", "catalog JSON (100 items), computed", "caching", "/catalog",
             json=catalog()),
    Scenario("catalog_cached", "catalog JSON, from the response cache", "caching",
             "/catalog/cached", json=catalog()),
    # Issue 27: the path-parameter route of an app with Prometheus metrics (each framework's
    # own, or its official plugin), to read next to path_param (the same route, no metrics).
    Scenario("path_param_metrics", "path parameter, with Prometheus metrics", "metrics",
             f"/users/{PARAM_ID}", json={"id": PARAM_ID}),
    # Issue 27: `path_param` again with OpenTelemetry tracing on (a server span per request,
    # recorded by the SDK, exported nowhere), next to the same route off (`path_param`).
    Scenario("path_param_traced", "path parameter, traced (OpenTelemetry SDK)", "tracing",
             f"/users/{PARAM_ID}", json={"id": PARAM_ID},
             headers=((b"traceparent",
                       b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),)),
)

BY_KEY = {s.key: s for s in SCENARIOS}


def check_http(scenario: Scenario, status: int, body: bytes) -> str | None:
    """Return why a response is wrong, or None when it is what the scenario expects."""
    if status != scenario.status:
        return f"status {status}, body {body[:80]!r}"
    if scenario.text is not None and body.decode(errors="replace") != scenario.text:
        return f"body {body[:80]!r}"
    if scenario.json is not None:
        try:
            got = json.loads(body)
        except ValueError:
            return f"not JSON: {body[:80]!r}"
        if got != scenario.json:
            return f"JSON {got!r}"
    return None
