"""Where the time of one plaintext/JSON request goes, pure or compiled (issue 19's "within 2x of
raw" targets, explained by measurement)::

    benchmarks/.venv/bin/python benchmarks/floor.py            # the pure build
    benchmarks/.venv-compiled/bin/python benchmarks/floor.py   # the compiled build

Calls each app in a tight loop inside one coroutine (no event-loop turn per request, unlike
``inprocess.py``), best of 5 runs, and prints µs per request for: the raw ASGI app, Joey, Joey
behind one more interpreted pass-through ASGI frame (what ``App.__call__`` costs: it is one),
the plaintext handler alone (user code, interpreted in both builds) and the loop itself. The
figures feed the analysis in ``benchmarks/GAPS.md``; nothing here is asserted on.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from apps import load

import joey._engine.tree as probe

COMPILED = probe.__file__.endswith(".so")
Message = dict[str, Any]


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Message) -> None:
    return None


async def _noop() -> None:
    return None


def _scope(path: str) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": [(b"host", b"bench")], "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }  # fmt: skip


async def _best(call: Callable[[], Awaitable[Any]], n: int = 100_000) -> float:
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(n):
            await call()
        best = min(best, (time.perf_counter() - started) / n * 1e6)
    return best


class _PassThrough:
    """One interpreted ASGI frame in front of an app: the shape of ``App.__call__``."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


async def main() -> None:
    raw = load("raw").build_app()
    app = load("joey-compiled" if COMPILED else "joey").build_app()
    wrapped = _PassThrough(app)
    started = asyncio.Event()
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})

    async def lifespan_send(message: Message) -> None:
        started.set()

    lifespan = asyncio.ensure_future(app({"type": "lifespan", "asgi": {"version": "3.0"},
                                          "state": {}}, inbox.get, lifespan_send))
    await started.wait()
    handler = next(route.handler for route in app.routes if route.path == "/plaintext")

    print(f"build: {'compiled' if COMPILED else 'pure'} (µs per request, best of 5)")
    for path in ("/plaintext", "/json"):
        scope = _scope(path)
        loop = await _best(_noop)  # the loop and one await of a coroutine: subtracted
        net = {
            name: await _best(lambda a=asgi, s=scope: a(dict(s), _receive, _send)) - loop
            for name, asgi in (("raw", raw), ("joey", app), ("joey + 1 frame", wrapped))
        }
        print(f"{path:11} " + "  ".join(f"{name} {value:.2f}" for name, value in net.items())
              + f"  (joey ÷ raw {net['joey'] / net['raw']:.2f}x; loop {loop:.2f} subtracted)")
    loop = await _best(_noop)
    print(f"plaintext handler alone (user code: builds a PlainTextResponse): "
          f"{await _best(handler) - loop:.2f} (loop {loop:.2f} subtracted)")
    await inbox.put({"type": "lifespan.shutdown"})
    await lifespan



if __name__ == "__main__":
    asyncio.run(main())
