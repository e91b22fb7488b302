"""The exception policy: how an exception raised while serving a request becomes a response.

The app's exception handlers are matched along the exception's MRO; an ``HTTPError`` without
a handler becomes its problem document; anything else is a 500 whose traceback is logged,
naming the handler (even when a catch-all handler for ``Exception`` renders it).

Unexpected errors (those logged with their traceback) are also handed to whoever serves the
scope and asked for them: :func:`record_unhandled` appends them to the list a test client
puts under ``scope["extensions"]["joey.errors"]``, so the test raises what the handler raised
after the logs and the 500 are exactly as in production.
"""

from __future__ import annotations

import inspect
import logging
import traceback
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from joey.describe import describe
from joey.exceptions import HTTPError
from joey.pipelines import Pipeline
from joey.requests import Request
from joey.responses import ProblemResponse, Response, to_response

logger = logging.getLogger("joey")

ExceptionHandler = Callable[[Request, Any], Any | Awaitable[Any]]


class ExceptionPolicy:
    """Turns exceptions into responses through the app's handlers."""

    def __init__(self, handlers: Mapping[type[BaseException], ExceptionHandler],
                 debug: bool) -> None:
        self.handlers = handlers
        self.debug = debug
        self._cache: dict[type[BaseException], ExceptionHandler | None] = {}

    def lookup(self, exc_type: type[BaseException]) -> ExceptionHandler | None:
        """The handler for ``exc_type`` or its nearest base class, if any."""
        if not self.handlers:
            return None
        try:
            return self._cache[exc_type]
        except KeyError:
            pass
        registered = handled_as(exc_type, self.handlers)
        found = None if registered is None else self.handlers[registered]
        self._cache[exc_type] = found
        return found

    def answers(self, exc: Exception) -> bool:
        """Whether ``exc`` is answered by the app itself (an ``HTTPError``, or an exception
        with a handler other than a catch-all for ``Exception``), not a 500."""
        return isinstance(exc, HTTPError) or handled_as(type(exc), self.handlers) not in (
            None, Exception, BaseException)

    async def respond(self, request: Request, exc: Exception,
                      pipeline: Pipeline | None) -> Response:
        """The response for ``exc``, raised while ``pipeline`` (if known) served ``request``."""
        handler = self.lookup(type(exc))
        if handler is not None:
            if not isinstance(exc, HTTPError) and _catches_everything(type(exc), self.handlers):
                # A handler for Exception renders the 500; the error is still unexpected,
                # so its traceback is logged whoever renders the response.
                _log_unhandled(request, exc, pipeline,
                               f" (rendered by exception handler {describe(handler)})")
            try:
                result = handler(request, exc)
                if inspect.isawaitable(result):
                    result = await result
                return result if isinstance(result, Response) else _error_value_response(
                    result, exc, handler)
            except Exception as handler_exc:
                logger.error("Exception handler %s failed", describe(handler),
                             exc_info=handler_exc)
                exc = handler_exc
        if isinstance(exc, HTTPError):
            return ProblemResponse.from_error(exc)
        _log_unhandled(request, exc, pipeline, "")
        if self.debug:
            # loaded only by debug apps, so production imports never pay for it
            from joey._engine.debugpage import debug_response, prefers_html

            if prefers_html(request):  # a browser gets the debug page
                return debug_response(request, exc, getattr(pipeline, "__joey_route__", None))
        detail = "".join(traceback.format_exception(exc)) if self.debug else None
        return ProblemResponse(
            {"type": "about:blank", "title": "Internal Server Error", "status": 500,
             **({"detail": detail} if detail else {})},
            status_code=500,
        )


def _log_unhandled(request: Request, exc: Exception, pipeline: Pipeline | None,
                   note: str) -> None:
    route = getattr(pipeline, "__joey_route__", None)
    where = describe(route.endpoint) if route is not None else "middleware"
    logger.error(
        "Unhandled %s in %s for %s %s%s", type(exc).__name__, where, request.method,
        request.path, note, exc_info=exc,
    )
    record_unhandled(request.scope, exc)


def record_unhandled(scope: Mapping[str, Any], exc: BaseException) -> None:
    """Hand an unexpected error, already logged, to the server of ``scope`` if it asked for
    them (the test client does, to raise it in the test): the ``"joey.errors"`` extension is
    a list to append to. Only on error paths; nothing else looks at it."""
    sink = (scope.get("extensions") or {}).get("joey.errors")
    if sink is not None:
        sink.append(exc)


def handled_as(exc_type: type[BaseException],
               handlers: Mapping[type[BaseException], Any]) -> type[BaseException] | None:
    """The class under which ``handlers`` has a handler for ``exc_type``: the nearest along
    its MRO, or ``None``. The one reading of "which handler catches this", for the engine and
    for the OpenAPI document alike."""
    for cls in exc_type.__mro__:
        if cls in handlers:
            return cls
    return None


def _catches_everything(exc_type: type[BaseException],
                        handlers: Mapping[type[BaseException], Any]) -> bool:
    """Whether the handler for ``exc_type`` is the one registered for ``Exception`` (or
    ``BaseException``): a catch-all that renders unexpected errors."""
    return handled_as(exc_type, handlers) in (Exception, BaseException)


def _error_value_response(value: Any, exc: Exception, handler: Callable[..., Any]) -> Response:
    """What an exception handler returned, when it is not a Response: converted like a route
    handler's value, with the error's status (500 for errors that are not HTTPError) and
    headers (``Allow``, ``Retry-After``...)."""
    status = exc.status_code if isinstance(exc, HTTPError) else 500
    try:
        response = to_response(value, status)
    except TypeError as problem:
        raise TypeError(
            f"Exception handler {describe(handler)} returned a {type(value).__name__} for "
            f"{type(exc).__name__}: {problem}"
        ) from None
    if isinstance(exc, HTTPError):
        for name, header in exc.headers.items():
            response.headers.setdefault(name, header)
    return response


def declared_schemas(schemas: Mapping[type[BaseException], Any],
                     handlers: Mapping[type[BaseException], Any],
                     ) -> dict[type[BaseException], tuple[Any, str]]:
    """``App(exception_schemas=)`` checked against ``exception_handlers``: a schema documents
    what a handler answers, so one without its handler is refused (at construction)."""
    for exc_type in schemas:
        if exc_type not in handlers:
            raise ValueError(f"exception_schemas[{exc_type.__name__}]: there is no handler "
                             f"for {exc_type.__name__} in exception_handlers; a schema "
                             "documents what a handler answers")
    return {exc_type: (schema, "application/json") for exc_type, schema in schemas.items()}
