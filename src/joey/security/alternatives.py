"""Alternatives: ``AnyOf(a, b)``, either of several security schemes (see
:mod:`joey.security.schemes` for the schemes themselves)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any, cast

from joey.exceptions import MissingCredentials
from joey.security.schemes import HTTPBasic, HTTPBearer, SecurityScheme


class AnyOf:
    """Either of several schemes: the credentials of the first one the request carries
    (``AnyOf(bearer, api_key)``: a token, or else an API key). Credentials that are there but
    malformed are that scheme's 401; none at all is a 401 with every scheme's challenge (or
    ``None`` for a parameter typed ``... | None``). The API document lists the schemes as
    alternatives (one security requirement each), not as all required.

    Each scheme runs as a security dependency of its own (a ``JWTBearer`` keyed by a
    dependency, and ``app.dependency_overrides``, work as they do alone).

    Example::

        from joey.security import (
            APIKeyCredentials, APIKeyHeader, BearerCredentials, HTTPBearer, Security)

        bearer = HTTPBearer()
        api_key = APIKeyHeader("X-API-Key")
        either = AnyOf(bearer, api_key)

        @app.get("/me")
        async def me(
            c: Annotated[BearerCredentials | APIKeyCredentials, Security(either)],
        ) -> str:
            return c.token if isinstance(c, BearerCredentials) else c.key
    """

    #: marks the object as a security dependency: it runs before the request is read
    __joey_security__ = True

    def __init__(self, *schemes: SecurityScheme) -> None:
        if len(schemes) < 2:
            raise ValueError("AnyOf needs two schemes or more; use one scheme on its own")
        self.schemes: tuple[SecurityScheme, ...] = schemes
        # What runs in its place (plans read __joey_dependency__): a function that asks for
        # each scheme's credentials, optional, so that the missing ones are None.
        from joey.params.markers import Security

        async def first_found(**found: Any) -> Any:
            for name in names:
                if found[name] is not None:
                    return found[name]
            raise MissingCredentials(
                "Send credentials: " + " or ".join(_wanted(s) for s in self.schemes) + ".",
                {"www-authenticate": ", ".join(s.challenges() for s in self.schemes)})

        names = [f"scheme_{i}" for i in range(len(schemes))]
        first_found.__signature__ = inspect.Signature([  # type: ignore[attr-defined]
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY) for name in names])
        first_found.__annotations__ = {
            name: Annotated[object | None, Security(cast("Callable[..., Any]", scheme))]
            for name, scheme in zip(names, schemes, strict=True)}
        first_found.__qualname__ = repr(self)
        self.__joey_dependency__ = first_found

    @property
    def scheme_name(self) -> str:
        """The schemes' names, ``bearerAuth | apiKeyHeader`` (for ``joey routes``)."""
        return " | ".join(s.scheme_name for s in self.schemes)

    @property
    def __joey_alternatives__(self) -> tuple[SecurityScheme, ...]:
        """The schemes the route model lists as alternatives (``RouteInfo.security``)."""
        return self.schemes

    async def __call__(self) -> Any:  # pragma: no cover - plans run __joey_dependency__
        raise TypeError("AnyOf runs as a security dependency: Security(AnyOf(...))")

    def __repr__(self) -> str:
        return f"<AnyOf {self.scheme_name}>"


def _wanted(scheme: SecurityScheme) -> str:
    scheme = getattr(scheme, "scheme", scheme)  # a JWTBearer reads through its bearer scheme
    if isinstance(scheme, HTTPBearer):
        return f"an Authorization: {scheme.prefix} header"
    if isinstance(scheme, HTTPBasic):
        return "an Authorization: Basic header"
    key_name = getattr(scheme, "key_name", None)  # the API key schemes
    if key_name is not None:
        return f"the API key in the {key_name!r} {getattr(scheme, 'location', 'request')}"
    return repr(scheme)


__all__ = ["AnyOf"]
