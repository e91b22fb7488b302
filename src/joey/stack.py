"""The ASGI middleware stack: ``Middleware(cls, **options)`` declared on the app, built once.

Example::

    from joey.middleware import CompressionMiddleware

    app = App(asgi_middleware=[Middleware(CompressionMiddleware, minimum_size=500)])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from joey.types import ASGIApp

if TYPE_CHECKING:
    from joey.observability.tracing import Tracing


class Middleware:
    """An ASGI middleware class and its options, instantiated once when the app starts.

    Example::

        from joey.middleware import TrustedHostMiddleware

        app = App(asgi_middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=["a.com"])])
    """

    __slots__ = ("cls", "options")

    def __init__(self, cls: Callable[..., ASGIApp], /, **options: Any) -> None:
        self.cls = cls
        self.options = options

    def wrap(self, app: ASGIApp) -> ASGIApp:
        return self.cls(app, **self.options)

    def __repr__(self) -> str:
        return f"Middleware({getattr(self.cls, '__name__', self.cls)!r}, **{self.options!r})"


def build_stack(middleware: Sequence[Middleware], app: ASGIApp,
                tracing: Tracing | None = None) -> ASGIApp:
    """``app`` wrapped in ``middleware``, the first one outermost; with ``tracing``, the
    server span outside them all, so that it covers them (their log lines carry its ids)."""
    stack = app
    for item in reversed(middleware):
        stack = item.wrap(stack)
    return stack if tracing is None else tracing.wrap_app(stack)


__all__ = [
    "Middleware",
    "build_stack",
]
