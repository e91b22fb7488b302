"""Errors as exceptions: raise one anywhere in a handler and the client gets that status.

Error bodies are RFC 9457 problem details (``application/problem+json``).

Example::

    from joey import NotFound

    USERS = {1: {"id": 1}}

    @app.get("/users/{id:int}")
    async def user(id: int) -> dict[str, int]:
        if id not in USERS:
            raise NotFound(f"No user {id}.")
        return USERS[id]
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

# RFC 9110 names where Python's HTTPStatus still has the older ones (it varies by version).
_TITLES = {413: "Content Too Large", 416: "Range Not Satisfiable", 422: "Unprocessable Content"}


def _phrase(status_code: int) -> str:
    try:
        return HTTPStatus(status_code).phrase
    except ValueError:
        return "Error"


class HTTPError(Exception):
    """An error answered with an HTTP status and a problem-details body.

    ``detail`` is shown to the client, so put only what the client may know in it.
    ``extra`` adds members to the problem document (for instance ``errors``).
    """

    status_code: int = 500

    def __init__(
        self,
        status_code: int | None = None,
        detail: str | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        if status_code is not None:
            self.status_code = int(status_code)
        self.title = _TITLES.get(self.status_code) or _phrase(self.status_code)
        self.detail = detail
        self.headers = dict(headers) if headers else {}
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


class _NamedHTTPError(HTTPError):
    """Base of the named errors: the status is fixed by the class."""

    def __init__(
        self,
        detail: str | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(self.status_code, detail, headers, extra=extra)


class BadRequest(_NamedHTTPError):
    """400: the request is malformed (bad JSON, bad encoding, bad query string)."""

    status_code = 400


class Unauthorized(_NamedHTTPError):
    """401: authentication is required or failed."""

    status_code = 401


class MissingCredentials(Unauthorized):
    """401: the request carries no credentials at all. Security schemes raise it; a security
    dependency whose parameter is annotated ``T | None`` gets ``None`` instead."""


class Forbidden(_NamedHTTPError):
    """403: authenticated, but not allowed."""

    status_code = 403


class NotFound(_NamedHTTPError):
    """404: nothing here."""

    status_code = 404


class MethodNotAllowed(_NamedHTTPError):
    """405: the path exists, but not for this method. Sets ``Allow``."""

    status_code = 405

    def __init__(self, allowed: list[str] | tuple[str, ...], detail: str | None = None) -> None:
        self.allowed = tuple(allowed)
        super().__init__(detail, {"allow": ", ".join(self.allowed)})


class NotAcceptable(_NamedHTTPError):
    """406: no representation the client accepts."""

    status_code = 406


class Conflict(_NamedHTTPError):
    """409: the request conflicts with the current state."""

    status_code = 409


class Gone(_NamedHTTPError):
    """410: it was here, and is not any more."""

    status_code = 410


class PayloadTooLarge(_NamedHTTPError):
    """413: the body is larger than this route accepts."""

    status_code = 413


class UnsupportedMediaType(_NamedHTTPError):
    """415: the body's ``Content-Type`` is not one this route reads."""

    status_code = 415


class UnprocessableContent(_NamedHTTPError):
    """422: well-formed, but the values are invalid (see ``errors``)."""

    status_code = 422


class TooManyRequests(_NamedHTTPError):
    """429: slow down."""

    status_code = 429


class InternalServerError(_NamedHTTPError):
    """500: something broke on our side."""

    status_code = 500


class ServiceUnavailable(_NamedHTTPError):
    """503: try again later. ``retry_after`` (seconds) becomes the ``Retry-After`` header.

    Raise it (or a subclass) when a backing service is down; the client keeps its state and
    retries.

    Example::

        @app.get("/search")
        async def search(q: str) -> list[str]:
            raise ServiceUnavailable("The search index is rebuilding.", retry_after=30)
    """

    status_code = 503

    def __init__(
        self,
        detail: str | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        retry_after: int | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        merged = dict(headers) if headers else {}
        if retry_after is not None:
            merged["retry-after"] = str(max(0, int(retry_after)))
        self.retry_after = retry_after
        super().__init__(detail, merged, extra=extra)


class WebSocketDisconnect(Exception):
    """Raised by a WebSocket receive once the peer has gone.

    ``code`` is the close code the peer sent (1000 normal, 1001 going away, 1006 abnormal).
    """

    def __init__(self, code: int = 1000, reason: str = "") -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"WebSocket closed with code {code}" + (f": {reason}" if reason else ""))
