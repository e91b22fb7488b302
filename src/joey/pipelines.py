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

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from joey.describe import describe
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


def check_handler_middleware(middleware: Any) -> Any:
    """``middleware``, if it can be called as ``await middleware(request, call_next)``;
    otherwise a ``TypeError`` that says what it is and what to write instead (at the
    declaration, never a 500 per request)."""
    if isinstance(middleware, type):
        raise TypeError(
            f"{describe(middleware)} is a class. Handler middleware is a function or an object "
            "with `async def __call__(self, request, call_next)`: pass an instance. For ASGI "
            "middleware (`Cls(app, **options)`), write app.add_middleware(Cls, **options) or "
            "App(asgi_middleware=[Middleware(Cls, **options)])")
    if not callable(middleware):
        raise TypeError(f"{middleware!r} is not middleware: handler middleware is "
                        "`async def mw(request, call_next) -> Response`; ASGI middleware is "
                        "added with Middleware(Cls, **options) in App(asgi_middleware=[...])")
    try:
        signature = inspect.signature(middleware)
    except (TypeError, ValueError):  # pragma: no cover - a builtin: trust it
        return middleware
    try:
        signature.bind(None, None)
    except TypeError:
        raise TypeError(
            f"{describe(middleware)} cannot be called as handler middleware, "
            f"`await mw(request, call_next)` (its signature: {signature}). For an ASGI "
            "middleware factory, write App(asgi_middleware=[Middleware(factory, **options)])"
        ) from None
    return middleware


def is_handler_middleware_class(cls: type) -> bool:
    """Whether ``cls`` makes handler middleware (``__call__(self, request, call_next)``)
    rather than ASGI middleware (``__call__(self, scope, receive, send)``)."""
    call = getattr(cls, "__call__", None)  # noqa: B004 - the method, not callable()
    try:
        signature = inspect.signature(call)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    try:
        signature.bind(None, None, None)  # self, request, call_next
    except TypeError:
        return False
    try:
        signature.bind(None, None, None, None)  # self, scope, receive, send
    except TypeError:
        return True
    return False


#: answers an exception the app's exception handlers answer; ``None`` for the others
Answer = Callable[[Request, Exception], Awaitable[Response | None]]


def answering_errors(middleware: HandlerMiddleware, answer: Answer) -> HandlerMiddleware:
    """``middleware`` with Starlette's ``call_next`` (``@app.middleware("http")``): an error
    the app answers by itself (an ``HTTPError``, or one with an exception handler) comes back
    from ``call_next`` as that answer, so the middleware sees every response; an unexpected
    error still propagates (the 500 comes after the middleware, as in Starlette)."""

    async def http_middleware(request: Request, call_next: CallNext) -> Response:
        async def call_next_answering(inner: Request) -> Response:
            try:
                return await call_next(inner)
            except Exception as exc:
                response = await answer(inner, exc)
                if response is None:
                    raise
                inner.error = exc  # generator dependencies still see it at teardown
                return response

        return await middleware(request, call_next_answering)

    http_middleware.__wrapped__ = middleware  # type: ignore[attr-defined]
    http_middleware.__qualname__ = getattr(middleware, "__qualname__", "http_middleware")
    http_middleware.__module__ = getattr(middleware, "__module__", __name__)
    return http_middleware


def http_middleware(kind: str, add: Callable[[HandlerMiddleware], None], answer: Answer,
                    ) -> Callable[[Any], Any]:
    """The decorator ``@app.middleware("http")`` returns: it adds the function with
    Starlette's ``call_next`` (:func:`answering_errors`)."""
    if kind != "http":
        raise ValueError(f'@app.middleware({kind!r}): only "http" exists (handler middleware '
                         "sees HTTP requests; ASGI middleware, App(asgi_middleware=...), "
                         "sees WebSockets)")

    def register(func: Any) -> Any:
        add(answering_errors(check_handler_middleware(func), answer))
        return func

    return register


__all__ = [
    "Answer",
    "CallNext",
    "HandlerMiddleware",
    "Pipeline",
    "answering_errors",
    "chain",
    "check_handler_middleware",
    "http_middleware",
    "is_handler_middleware_class",
]
