"""Errors as exceptions: raise one anywhere in a handler and the client gets that status.

Error bodies are RFC 9457 problem details (``application/problem+json``).

Example::

    from joey import NotFound

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
        try:
            self.title = HTTPStatus(self.status_code).phrase
        except ValueError:
            self.title = "Error"
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


class BadRequest(HTTPError):
    """400: the request is malformed (bad JSON, bad encoding, bad query string)."""

    status_code = 400

    def __init__(
        self,
        detail: str | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(self.status_code, detail, headers, extra=extra)


class Unauthorized(BadRequest):
    """401: authentication is required or failed."""

    status_code = 401


class Forbidden(BadRequest):
    """403: authenticated, but not allowed."""

    status_code = 403


class NotFound(BadRequest):
    """404: nothing here."""

    status_code = 404


class MethodNotAllowed(BadRequest):
    """405: the path exists, but not for this method. Sets ``Allow``."""

    status_code = 405

    def __init__(self, allowed: list[str] | tuple[str, ...], detail: str | None = None) -> None:
        self.allowed = tuple(allowed)
        super().__init__(detail, {"allow": ", ".join(self.allowed)})


class NotAcceptable(BadRequest):
    """406: no representation the client accepts."""

    status_code = 406


class Conflict(BadRequest):
    """409: the request conflicts with the current state."""

    status_code = 409


class Gone(BadRequest):
    """410: it was here, and is not any more."""

    status_code = 410


class PayloadTooLarge(BadRequest):
    """413: the body is larger than this route accepts."""

    status_code = 413


class UnsupportedMediaType(BadRequest):
    """415: the body's ``Content-Type`` is not one this route reads."""

    status_code = 415


class UnprocessableContent(BadRequest):
    """422: well-formed, but the values are invalid (see ``errors``)."""

    status_code = 422


class TooManyRequests(BadRequest):
    """429: slow down."""

    status_code = 429


class InternalServerError(BadRequest):
    """500: something broke on our side."""

    status_code = 500


class ServiceUnavailable(BadRequest):
    """503: try again later."""

    status_code = 503


class WebSocketDisconnect(Exception):
    """Raised by a WebSocket receive once the peer has gone.

    ``code`` is the close code the peer sent (1000 normal, 1001 going away, 1006 abnormal).
    """

    def __init__(self, code: int = 1000, reason: str = "") -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"WebSocket closed with code {code}" + (f": {reason}" if reason else ""))
