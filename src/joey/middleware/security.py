"""Browser security headers, added to every HTTP answer that does not set them itself."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from joey.datastructures import encode_header
from joey.middleware._common import RawHeaders, raw_headers
from joey.types import ASGIApp, Message, Receive, Scope, Send


class SecurityHeadersMiddleware:
    """Add security headers; a header the app set on a response is left as the app set it.

    Defaults (each option set to None turns its header off):

    * ``Strict-Transport-Security: max-age=31536000`` - on HTTPS answers only, as RFC 6797
      requires; ``hsts_include_subdomains`` and ``hsts_preload`` add the directives (preload
      needs includeSubDomains and a max-age of at least a year, the preload list's rules).
    * ``X-Content-Type-Options: nosniff``
    * ``X-Frame-Options: DENY`` (or ``"SAMEORIGIN"``)
    * ``Referrer-Policy: strict-origin-when-cross-origin``
    * ``Content-Security-Policy`` and ``Content-Security-Policy-Report-Only``: not sent unless
      given; the text is passed through as written.
    * ``extra_headers``: anything else (``Permissions-Policy``, ``Cross-Origin-Opener-Policy``).

    Example::

        asgi_app = SecurityHeadersMiddleware(
            app,
            hsts_include_subdomains=True,
            content_security_policy="default-src 'self'; img-src 'self' data:",
            extra_headers={"Permissions-Policy": "geolocation=()"},
        )
    """

    __slots__ = ("_app", "_headers", "_hsts")

    def __init__(
        self,
        app: ASGIApp,
        *,
        hsts_max_age: int | None = 31_536_000,
        hsts_include_subdomains: bool = False,
        hsts_preload: bool = False,
        content_type_options: Literal["nosniff"] | None = "nosniff",
        frame_options: Literal["DENY", "SAMEORIGIN"] | None = "DENY",
        referrer_policy: str | None = "strict-origin-when-cross-origin",
        content_security_policy: str | None = None,
        content_security_policy_report_only: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        if hsts_preload and (not hsts_include_subdomains or (hsts_max_age or 0) < 31_536_000):
            raise ValueError(
                "hsts_preload requires hsts_include_subdomains=True and hsts_max_age of at least "
                "31536000 (one year), or browsers' preload lists will refuse the domain"
            )
        self._app = app
        hsts: tuple[bytes, bytes] | None = None
        if hsts_max_age is not None:
            value = f"max-age={int(hsts_max_age)}"
            if hsts_include_subdomains:
                value += "; includeSubDomains"
            if hsts_preload:
                value += "; preload"
            hsts = (b"strict-transport-security", value.encode("ascii"))
        self._hsts = hsts
        pairs = {
            "x-content-type-options": content_type_options,
            "x-frame-options": frame_options,
            "referrer-policy": referrer_policy,
            "content-security-policy": content_security_policy,
            "content-security-policy-report-only": content_security_policy_report_only,
            **{name.lower(): value for name, value in (extra_headers or {}).items()},
        }
        # Encoded (and checked for CR/LF injection) once, here.
        self._headers: RawHeaders = [
            encode_header(name, value) for name, value in pairs.items() if value is not None
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = self._headers
        if self._hsts is not None and scope.get("scheme") == "https":
            headers = [*headers, self._hsts]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                current = raw_headers(message.get("headers", ()))
                present = {name.lower() for name, _ in current}
                current.extend(pair for pair in headers if pair[0] not in present)
                message["headers"] = current
            await send(message)

        await self._app(scope, receive, send_with_headers)


__all__ = [
    "SecurityHeadersMiddleware",
]
