"""Declaring middleware, and the ASGI middleware stack built from it once.

``Middleware(cls, **options)`` is ASGI middleware declared on the app; the stack is built once,
when the app starts. :class:`MiddlewareDeclarations` gives the app Starlette's ways of declaring
middleware: ``app.add_middleware(Cls, **options)``, ``@app.middleware("http")``, and
``Middleware`` items in ``App(middleware=[...])``, each in Starlette's order.

Example::

    from joey.middleware import CompressionMiddleware

    app = App(asgi_middleware=[Middleware(CompressionMiddleware, minimum_size=500)])
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from joey.pipelines import (
    HandlerMiddleware,
    check_handler_middleware,
    http_middleware,
    is_handler_middleware_class,
)
from joey.types import ASGIApp

if TYPE_CHECKING:
    from joey._engine.errors import ExceptionPolicy
    from joey.observability.tracing import Tracing
    from joey.requests import Request
    from joey.responses import Response
    from joey.routing import Router

MiddlewareT = TypeVar("MiddlewareT", bound=HandlerMiddleware)


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
        try:
            signature = inspect.signature(cls)
        except (TypeError, ValueError):  # pragma: no cover - a builtin: trust it
            return
        try:  # refused here, where it is written, not at startup or per request
            signature.bind(None, **options)  # the app, then the options
        except TypeError as exc:
            name = _name(cls)
            missing = [p.name for p in list(signature.parameters.values())[1:]
                       if p.default is p.empty and p.name not in options
                       and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
            fix = (f" Pass {', '.join(f'{m}=...' for m in missing)}: "
                   f"app.add_middleware({name}, {', '.join(f'{m}=...' for m in missing)})"
                   if missing else "")
            raise TypeError(f"{self!r}: {name}(app, **options) cannot be made with these "
                            f"options: {exc}.{fix}") from None

    def wrap(self, app: ASGIApp) -> ASGIApp:
        return self.cls(app, **self.options)

    def __repr__(self) -> str:
        return f"Middleware({_name(self.cls)!r}, **{self.options!r})"


def _name(cls: Any) -> str:
    return str(getattr(cls, "__name__", cls))


def build_stack(middleware: Sequence[Middleware], app: ASGIApp,
                tracing: Tracing | None = None) -> ASGIApp:
    """``app`` wrapped in ``middleware``, the first one outermost; with ``tracing``, the
    server span outside them all, so that it covers them (their log lines carry its ids)."""
    stack = app
    for item in reversed(middleware):
        try:
            stack = item.wrap(stack)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{item!r} could not be made when the app started: {exc}") from exc
    return stack if tracing is None else tracing.wrap_app(stack)


def declared_middleware(middleware: Any, options: dict[str, Any],
                        ) -> Middleware | HandlerMiddleware:
    """What ``app.add_middleware(middleware, **options)`` declares: ASGI middleware for a
    class (Starlette's meaning) or a ``Middleware``, else handler middleware; a ``TypeError``
    naming the fix for anything that would fail later."""
    if isinstance(middleware, Middleware) and not options:
        return middleware
    if isinstance(middleware, type) and not is_handler_middleware_class(middleware):
        return Middleware(middleware, **options)
    if options:
        raise TypeError(f"app.add_middleware({middleware!r}, **{options!r}): options are for "
                        "an ASGI middleware class, made as Cls(app, **options)")
    return check_handler_middleware(middleware)  # type: ignore[no-any-return]


def split_middleware(items: Sequence[HandlerMiddleware | Middleware],
                     ) -> tuple[list[HandlerMiddleware], list[Middleware]]:
    """``App(middleware=[...])``: the handler middleware, and the ``Middleware(Cls, ...)``
    items (Starlette's meaning: ASGI middleware), each in the order given."""
    handlers = [item for item in items if not isinstance(item, Middleware)]
    return handlers, [item for item in items if isinstance(item, Middleware)]


class MiddlewareDeclarations:
    """How an app declares middleware (a mixin of :class:`joey.App`)."""

    router: Router
    asgi_middleware: list[Middleware]

    def _policy(self) -> ExceptionPolicy:
        raise NotImplementedError  # pragma: no cover - the App's

    @overload
    def middleware(self, kind: Literal["http"], /) -> Callable[[MiddlewareT], MiddlewareT]: ...
    @overload
    def middleware(self, kind: MiddlewareT, /) -> MiddlewareT: ...
    def middleware(self, kind: Any, /) -> Any:
        """Register app-wide handler middleware, as :meth:`add_middleware`. Starlette's
        ``@app.middleware("http")`` also gives it Starlette's ``call_next``, which returns the
        answer to an error the app answers (an ``HTTPError``, a handled exception).

        Example::

            @app.middleware("http")
            async def timing(request: Request, call_next: CallNext) -> Response:
                started = time.perf_counter()
                response = await call_next(request)
                response.headers["server-timing"] = f"app;dur={time.perf_counter() - started}"
                return response
        """
        if isinstance(kind, str):
            return http_middleware(kind, self.add_middleware, self._answer)
        self.add_middleware(kind)
        return kind

    @property
    def handler_middleware(self) -> list[HandlerMiddleware]:
        """The app-wide handler middleware, outermost first."""
        return self.router.middleware

    def add_middleware(self, middleware: Any, /, **options: Any) -> None:
        """Add middleware around what was added before (the last added is outermost, as in
        Starlette): ``app.add_middleware(CORSMiddleware, allow_origins=[...])``, an ASGI class
        and its options (or a ``Middleware``), around the whole app; or handler middleware,
        ``async def mw(request, call_next)``, around every route. A mistake is refused here,
        naming the fix; options a class does not take too.

        Example::

            from joey.middleware import TrustedHostMiddleware

            app.add_middleware(TrustedHostMiddleware, allowed_hosts=["example.com"])
        """
        declared = declared_middleware(middleware, options)
        if isinstance(declared, Middleware):
            self.asgi_middleware.insert(0, declared)
        else:
            self.router.middleware.insert(0, declared)

    async def _answer(self, request: Request, exc: Exception) -> Response | None:
        # what `@app.middleware("http")`'s call_next returns for an error the app answers
        policy = self._policy()
        return await policy.respond(request, exc, None) if policy.answers(exc) else None


__all__ = [
    "Middleware",
    "MiddlewareDeclarations",
    "build_stack",
    "declared_middleware",
    "split_middleware",
]
