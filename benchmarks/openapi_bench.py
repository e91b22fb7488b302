"""Issue 14: how long building the OpenAPI document of a 1,000-route app takes (target: < 1 s).

Each route has a typed path parameter, a query value, a Struct body and a Struct return type,
so every part of the builder runs. The app is compiled first, as a server's startup does
(``app.freeze()``): only the document is timed, with a fresh ``OpenAPI`` each repeat (no
cache). Reading ``app.routes`` of an app that has not started compiles its declarations
again every time (a preview kept nowhere), so before issue 29 this bench, which read it
instead of freezing the app, timed the compile of the 1,000 routes with each document; that
figure is shown on a row of its own. Serving the document afterwards is a cached
bytes lookup, and nothing is added to other routes' request path (the in-process section
shows those).

    python benchmarks/openapi_bench.py
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import msgspec

from joey import App
from joey.openapi import OpenAPI

ROUTES = 1000
TARGET_S = 1.0


class Item(msgspec.Struct):
    name: str
    price: float
    tags: list[str] = []


class Saved(msgspec.Struct):
    id: int
    item: Item


def build_app(routes: int = ROUTES) -> App:
    app = App()
    for n in range(routes):
        @app.post(f"/r{n}/{{item_id:int}}", name=f"r{n}")
        async def handler(item_id: int, item: Item, q: int = 0) -> Saved:
            return Saved(item_id, item)
    return app


def measure(repeats: int = 5) -> dict[str, Any]:
    app = build_app()
    started = time.perf_counter()
    OpenAPI().document(app)  # not started: its declarations compiled for this document
    unstarted_s = time.perf_counter() - started
    app.freeze()  # compiled once, as at startup: only the document is timed below
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        document = OpenAPI().document(app)
        timings.append(time.perf_counter() - started)
    assert len(document["paths"]) == ROUTES
    return {"median_s": statistics.median(timings), "min_s": min(timings), "repeats": repeats,
            "unstarted_s": unstarted_s}


def table(result: dict[str, Any]) -> str:
    return "\n".join([
        "## OpenAPI document (issue 14)", "",
        f"Building the OpenAPI 3.1 document of a {ROUTES}-route app (typed path, query, Struct"
        " body and return on every route), app already compiled, no cache.", "",
        "| routes | median | best | repeats |", "|---|---|---|---|",
        f"| {ROUTES} | {result['median_s'] * 1000:.0f} ms | {result['min_s'] * 1000:.0f} ms |"
        f" {result['repeats']} |",
        f"| {ROUTES}, app not started (its routes compiled for the document) |"
        f" {result['unstarted_s'] * 1000:.0f} ms | - | 1 |", "",
    ])


def targets(result: dict[str, Any]) -> list[str]:
    met = "met" if result["median_s"] < TARGET_S else "MISSED"
    return [f"- OpenAPI document of {ROUTES} routes under {TARGET_S:.0f} s: "
            f"{result['median_s'] * 1000:.0f} ms, {met}"]


if __name__ == "__main__":
    outcome = measure()
    print(table(outcome))
    print("\n".join(targets(outcome)))
