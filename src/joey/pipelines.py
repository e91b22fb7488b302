"""Pipelines and handler middleware: a request in, a response out.

A *pipeline* is what serves one route: ``async (request) -> response``. Handler middleware
(``async def mw(request, call_next) -> Response``) wraps it; :func:`chain` composes a route's
middleware around its handler once, at startup, so a request only calls functions.

Example::

    async def timing(request: Request, call_next: CallNext) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        response.headers["server-timing"] = f"app;dur={time.perf_counter() - started}"
        return response
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from joey.requests import Request
from joey.responses import Response

Pipeline = Callable[[Request], Awaitable[Response]]
#: what handler middleware calls to go on: the rest of the pipeline
CallNext = Callable[[Request], Awaitable[Response]]
#: ``async def mw(request, call_next) -> Response``
HandlerMiddleware = Callable[[Request, CallNext], Awaitable[Response]]


def chain(middleware: Sequence[HandlerMiddleware], inner: Pipeline) -> Pipeline:
    """Wrap ``inner`` in ``middleware``, the first one outermost. Built once per route."""
    pipeline = inner
    for mw in reversed(middleware):
        pipeline = _bind(mw, pipeline)
    return pipeline


def _bind(middleware: HandlerMiddleware, call_next: Pipeline) -> Pipeline:
    async def step(request: Request) -> Response:
        return await middleware(request, call_next)

    return step


__all__ = [
    "CallNext",
    "HandlerMiddleware",
    "Pipeline",
    "chain",
]
