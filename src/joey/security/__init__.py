"""Authentication and authorization: schemes, security dependencies and guards.

Security runs in its own phase, after routing and before anything else is read from the
request. The full order of a request is:

    routing → security (schemes, guards) → parameters and dependencies → body → handler

so an anonymous client gets its 401 (and a client without the right scope its 403) before
any 422 about the body it sent.

* :mod:`joey.security.schemes`: ``HTTPBearer`` (any prefixes), ``HTTPBasic``, ``APIKeyHeader``
  / ``APIKeyQuery`` / ``APIKeyCookie``, ``OAuth2PasswordBearer``, ``OpenIDConnect``; each
  gives typed credentials or answers 401 with the right ``WWW-Authenticate`` challenge;
  ``AnyOf(a, b)``: either scheme (the first whose credentials the request carries);
* ``Security(dependency, scopes=[...])``: a dependency that runs in the security phase (a
  scheme, a function that turns credentials into a user, a guard); ``scopes`` are what the
  route requires, visible to every security dependency as ``RouteInfo.scopes``;
* guards: a security dependency that returns nothing and raises to refuse, declared for the
  app, a router or a route with ``dependencies=[Security(guard)]``; a parameter typed
  :class:`joey.RouteInfo` gives it the route's declared metadata (scopes, tags, name);
* :mod:`joey.security.jwt` (the ``jwt`` extra): ``JWTBearer`` verifies JSON Web Tokens;
  ``from joey.security import JWTBearer`` works, and imports PyJWT only then;
* :func:`constant_time_compare`: compare a password, key or token with the expected one
  (``secrets.compare_digest`` raises on non-ASCII text, which any client can send).

Example::

    import msgspec

    class Note(msgspec.Struct):
        text: str

    bearer = HTTPBearer()

    async def current_user(token: Annotated[BearerCredentials, Security(bearer)]) -> str:
        if token.token != "s3cret":
            raise bearer.invalid("Unknown token.")
        return "ann"

    @app.post("/notes")
    async def add(note: Note, user: Annotated[str, Security(current_user)]) -> Note:
        return note
"""

from typing import TYPE_CHECKING

from joey.exceptions import MissingCredentials
from joey.lazy import lazy_attributes
from joey.params.markers import Security
from joey.security.alternatives import AnyOf
from joey.security.schemes import (
    APIKeyCookie,
    APIKeyCredentials,
    APIKeyHeader,
    APIKeyQuery,
    BasicCredentials,
    BearerCredentials,
    HTTPBasic,
    HTTPBearer,
    OAuth2PasswordBearer,
    OpenIDConnect,
    SecurityScheme,
    constant_time_compare,
    require_scopes,
)

if TYPE_CHECKING:
    from joey.security.jwt import JWTBearer, JWTCredentials

# perf: JWTBearer needs PyJWT (the `jwt` extra): imported on first use, so that
# `import joey.security` works without it.
__getattr__ = lazy_attributes(
    __name__, globals(), dict.fromkeys(("JWTBearer", "JWTCredentials"), "joey.security.jwt"),
)

__all__ = [
    "APIKeyCookie", "APIKeyCredentials", "APIKeyHeader", "APIKeyQuery", "AnyOf",
    "BasicCredentials", "BearerCredentials", "HTTPBasic", "HTTPBearer", "JWTBearer",
    "JWTCredentials", "MissingCredentials",
    "OAuth2PasswordBearer", "OpenIDConnect", "Security", "SecurityScheme",
    "constant_time_compare", "require_scopes",
]
