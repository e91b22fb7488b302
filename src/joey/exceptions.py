"""Errors as exceptions: raise one anywhere in a handler and the client gets that status.

Error bodies are RFC 9457 problem details (``application/problem+json``). Every class takes
the same arguments: ``(detail=None, headers=None, *, retry_after=None, extra=None)``, and
:class:`HTTPError` (or any subclass) also takes the status first: ``HTTPError(418, "...")``.

Example::

    from joey import NotFound

    USERS = {1: {"id": 1}}

    @app.get("/users/{id:int}")
    async def user(id: int) -> dict[str, int]:
        if id not in USERS:
            raise NotFound(f"No user {id}.")
        return USERS[id]

Old names (``PayloadTooLarge``) still import, with a ``DeprecationWarning`` (see
docs/errors.md, "Deprecated names").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import format_datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, overload

from joey.lazy import lazy_attributes

# RFC 9110 §15 names where Python's HTTPStatus still has older ones (it varies by version).
_TITLES = {
    413: "Content Too Large",
    414: "URI Too Long",
    416: "Range Not Satisfiable",
    422: "Unprocessable Content",
}


def _phrase(status_code: int) -> str:
    try:
        return HTTPStatus(status_code).phrase
    except ValueError:
        return "Error"


def retry_after_value(retry_after: int | float | datetime) -> str:
    """The ``Retry-After`` value (RFC 9110 §10.2.3) for a delay in seconds (rounded up, never
    negative) or a moment (an aware ``datetime``, sent as an HTTP date).

    Example::

        retry_after_value(30)  # "30"
    """
    if isinstance(retry_after, datetime):
        if retry_after.tzinfo is None:
            raise ValueError("retry_after needs an aware datetime (for instance with tzinfo=UTC)")
        return format_datetime(retry_after.astimezone(UTC), usegmt=True)
    seconds = int(retry_after)
    seconds += seconds < retry_after  # round up: 0.5 s is "1", not "0" (retry at once)
    return str(max(0, seconds))


class HTTPError(Exception):
    """An error answered with an HTTP status and a problem-details body.

    - ``status_code`` (first, or by keyword): the status; a subclass fixes it with a
      ``status_code`` class attribute and is raised with the detail first.
    - ``detail`` is shown to the client, so put only what the client may know in it.
    - ``headers`` are added to the error response.
    - ``retry_after`` (seconds, or an aware ``datetime``) sets ``Retry-After``: meaningful
      for 413, 429 and 503 (RFC 9110 §10.2.3, RFC 6585 §4).
    - ``extra`` adds members to the problem document (for instance ``errors``).

    Example::

        class Teapot(HTTPError):
            status_code = 418

        assert Teapot("I only make tea.").status_code == 418
        assert HTTPError(418, "I only make tea.").status_code == 418
        assert TooManyRequests(retry_after=30).headers == {"retry-after": "30"}
    """

    status_code: int = 500

    @overload
    def __init__(
        self,
        status_code: int,
        detail: str | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        retry_after: int | float | datetime | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self,
        detail: str | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        status_code: int | None = None,
        retry_after: int | float | datetime | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None: ...

    def __init__(
        self,
        *args: Any,
        status_code: int | None = None,
        detail: str | None = None,
        headers: Mapping[str, str] | None = None,
        retry_after: int | float | datetime | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        # One signature for the base and every subclass: an int first is the status (the
        # base's habit, `HTTPError(404, "...")`), anything else is the detail (`NotFound("...")`).
        rest = list(args)
        if rest and isinstance(rest[0], int) and not isinstance(rest[0], bool):
            if status_code is not None:
                raise TypeError(f"{type(self).__name__}() got status_code twice")
            status_code = rest.pop(0)
        if len(rest) > 2:
            raise TypeError(
                f"{type(self).__name__}() takes ([status_code,] detail, headers) positionally, "
                f"got {len(args)} arguments; pass retry_after= and extra= by keyword"
            )
        if rest:
            if detail is not None:
                raise TypeError(f"{type(self).__name__}() got detail twice")
            detail = rest[0]
        if len(rest) == 2:
            if headers is not None:
                raise TypeError(f"{type(self).__name__}() got headers twice")
            headers = rest[1]
        if status_code is not None:
            self.status_code = int(status_code)
        self.title = _TITLES.get(self.status_code) or _phrase(self.status_code)
        self.detail = detail
        self.headers = dict(headers) if headers else {}
        self.retry_after = retry_after
        if retry_after is not None:
            self.headers["retry-after"] = retry_after_value(retry_after)
        self.extra = dict(extra) if extra else {}
        super().__init__(detail or self.title)

    def to_problem(self) -> dict[str, Any]:
        """The RFC 9457 problem document for this error."""
        problem: dict[str, Any] = {
            "type": "about:blank",
            "title": self.title,
            "status": self.status_code,
        }
        if self.detail is not None:
            problem["detail"] = self.detail
        problem.update(self.extra)
        return problem

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status_code={self.status_code}, detail={self.detail!r})"


class BadRequest(HTTPError):
    """400: the request is malformed (bad JSON, bad encoding, bad query string)."""

    status_code = 400


class Unauthorized(HTTPError):
    """401: authentication is required or failed."""

    status_code = 401


class MissingCredentials(Unauthorized):
    """401: the request carries no credentials at all. Security schemes raise it; a security
    dependency whose parameter is annotated ``T | None`` gets ``None`` instead."""


class Forbidden(HTTPError):
    """403: authenticated, but not allowed."""

    status_code = 403


class NotFound(HTTPError):
    """404: nothing here."""

    status_code = 404


class MethodNotAllowed(HTTPError):
    """405: the path exists, but not for this method. ``allowed`` sets ``Allow``.

    Example::

        error = MethodNotAllowed("Use GET.", allowed=["GET", "HEAD"])
        assert error.headers == {"allow": "GET, HEAD"}
    """

    status_code = 405

    def __init__(
        self,
        detail: str | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        allowed: Iterable[str] = (),
        retry_after: int | float | datetime | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        if detail is not None and not isinstance(detail, str):
            raise TypeError("MethodNotAllowed takes the allowed methods by keyword: "
                            "MethodNotAllowed(detail, allowed=[...])")
        self.allowed = tuple(allowed)
        merged = dict(headers) if headers else {}
        if self.allowed:
            merged["allow"] = ", ".join(self.allowed)
        super().__init__(detail, merged, retry_after=retry_after, extra=extra)


class NotAcceptable(HTTPError):
    """406: no representation the client accepts."""

    status_code = 406


class Conflict(HTTPError):
    """409: the request conflicts with the current state."""

    status_code = 409


class Gone(HTTPError):
    """410: it was here, and is not any more."""

    status_code = 410


class ContentTooLarge(HTTPError):
    """413: the body is larger than this route accepts (RFC 9110 §15.5.14; formerly
    ``PayloadTooLarge``, which still imports with a ``DeprecationWarning``)."""

    status_code = 413


class UnsupportedMediaType(HTTPError):
    """415: the body's ``Content-Type`` is not one this route reads."""

    status_code = 415


class UnprocessableContent(HTTPError):
    """422: well-formed, but the values are invalid (see ``errors``)."""

    status_code = 422


class TooManyRequests(HTTPError):
    """429: slow down. ``retry_after`` (seconds) becomes the ``Retry-After`` header.

    Example::

        error = TooManyRequests("At most 10 a minute.", retry_after=6)
        assert error.headers == {"retry-after": "6"}
    """

    status_code = 429


class InternalServerError(HTTPError):
    """500: something broke on our side."""

    status_code = 500


class ServiceUnavailable(HTTPError):
    """503: try again later. ``retry_after`` (seconds) becomes the ``Retry-After`` header.

    Raise it (or a subclass) when a backing service is down; the client keeps its state and
    retries.

    Example::

        @app.get("/search")
        async def search(q: str) -> list[str]:
            raise ServiceUnavailable("The search index is rebuilding.", retry_after=30)
    """

    status_code = 503


class WebSocketDisconnect(Exception):
    """Raised by a WebSocket receive once the peer has gone.

    ``code`` is the close code the peer sent (1000 normal, 1001 going away, 1006 abnormal).
    """

    def __init__(self, code: int = 1000, reason: str = "") -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"WebSocket closed with code {code}" + (f": {reason}" if reason else ""))


# Old names, kept as aliases that warn when used (see docs/errors.md, "Deprecated names").
_DEPRECATED = {"PayloadTooLarge": "ContentTooLarge"}

if TYPE_CHECKING:
    PayloadTooLarge = ContentTooLarge  # deprecated: use ContentTooLarge

__getattr__ = lazy_attributes(__name__, globals(), {}, deprecated=_DEPRECATED)

__all__ = [
    "BadRequest",
    "Conflict",
    "ContentTooLarge",
    "Forbidden",
    "Gone",
    "HTTPError",
    "InternalServerError",
    "MethodNotAllowed",
    "MissingCredentials",
    "NotAcceptable",
    "NotFound",
    "ServiceUnavailable",
    "TooManyRequests",
    "Unauthorized",
    "UnprocessableContent",
    "UnsupportedMediaType",
    "WebSocketDisconnect",
    "retry_after_value",
]
