"""Security schemes: read credentials from a request, or answer 401 with the right challenge.

A scheme is an object used as a security dependency (``Security(bearer)``): it runs after
routing and before the request's other parameters and body are read (see
:mod:`joey.params.run`), and hands the handler typed credentials. Checking them (is this
token known? whose is it?) is the app's: a function that takes the credentials, itself a
``Security(...)`` dependency.

* a request without the credential: :class:`~joey.exceptions.MissingCredentials` (401 with
  the scheme's challenge, no error code: RFC 6750 §3.1). A parameter annotated
  ``Credentials | None`` gets ``None`` instead: optional authentication;
* a malformed credential (bad Base64, a token with characters RFC 6750 forbids): 401 with
  ``error="invalid_request"``/``"invalid_token"``;
* scopes the credentials lack (:func:`require_scopes`): 403 with
  ``error="insufficient_scope"`` and the scopes required.

Every scheme describes itself for the API document: ``scheme_name`` and :meth:`openapi`;
the route model lists the schemes each route uses (``RouteInfo.security``).

Example::

    bearer = HTTPBearer(prefix="Token")

    @app.get("/me")
    async def me(token: Annotated[BearerCredentials, Security(bearer)]) -> dict[str, str]:
        return {"token": token.token}
"""

from __future__ import annotations

import base64
import dataclasses
import hmac
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from joey.exceptions import Forbidden, MissingCredentials, Unauthorized
from joey.requests import HTTPConnection
from joey.routeinfo import RouteInfo


@dataclasses.dataclass(frozen=True, slots=True)
class BearerCredentials:
    """A token from ``Authorization: <prefix> <token>``."""

    scheme: str
    token: str


@dataclasses.dataclass(frozen=True, slots=True)
class BasicCredentials:
    """A user name and password from ``Authorization: Basic`` (RFC 7617)."""

    username: str
    password: str = dataclasses.field(repr=False)


@dataclasses.dataclass(frozen=True, slots=True)
class APIKeyCredentials:
    """An API key, and where it was found (``header``, ``query`` or ``cookie``)."""

    key: str = dataclasses.field(repr=False)
    location: str
    name: str


def constant_time_compare(given: str | bytes, expected: str | bytes) -> bool:
    """Whether two secrets are equal, in a time that does not tell where they differ.

    Text is compared as UTF-8, so any string works: ``hmac.compare_digest`` and
    ``secrets.compare_digest`` raise ``TypeError`` for a ``str`` with a non-ASCII character,
    which a client can put in any header, cookie, query value or Basic password (a 500).

    Example::

        ADMIN_PASSWORD = os.environ.get("ADMIN_PASSWORD", "")
        basic = HTTPBasic()

        async def admin(c: Annotated[BasicCredentials, Security(basic)]) -> str:
            if not (constant_time_compare(c.username, "admin")
                    and constant_time_compare(c.password, ADMIN_PASSWORD)):
                raise basic.invalid("Wrong user name or password.")
            return c.username
    """
    return hmac.compare_digest(_as_bytes(given), _as_bytes(expected))


def _as_bytes(value: str | bytes) -> bytes:
    # surrogatepass: even a lone surrogate encodes (one to one), so nothing here raises
    return value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class SecurityScheme:
    """Base of the schemes: a challenge for 401s, a description for the API document.

    Subclasses implement ``__call__(connection)``, returning credentials or raising.
    """

    #: marks the object as a security dependency: it runs before the request is read
    __joey_security__ = True
    #: the OpenAPI ``type`` and the challenge's auth scheme
    auth_scheme = ""
    default_name = "auth"

    def __init__(self, *, name: str | None = None, realm: str | None = None,
                 description: str | None = None) -> None:
        #: the scheme's name in the API document's ``securitySchemes``
        self.scheme_name = name or self.default_name
        self.realm = realm
        self.description = description

    def challenge(self, error: str | None = None, description: str | None = None,
                  scopes: Iterable[str] = (), *, auth_scheme: str | None = None) -> str:
        """The ``WWW-Authenticate`` value: ``Bearer realm="api", error="invalid_token"``
        (``auth_scheme``: another word than the scheme's, one of a bearer's prefixes)."""
        params = [f"realm={_quote(self.realm)}"] if self.realm else []
        params.extend(self.challenge_params())
        if error:
            params.append(f"error={_quote(error)}")
        if description:
            params.append(f"error_description={_quote(description)}")
        scope = " ".join(scopes)
        if scope:
            params.append(f"scope={_quote(scope)}")
        return (auth_scheme or self.auth_scheme) + (" " + ", ".join(params) if params else "")

    def challenge_params(self) -> list[str]:
        """Parameters every challenge of this scheme carries (Basic's ``charset``)."""
        return []

    def challenges(self) -> str:
        """The ``WWW-Authenticate`` value for a request without credentials: the challenge,
        one per word a client may use (a bearer scheme's several prefixes)."""
        return self.challenge()

    def missing(self, detail: str) -> MissingCredentials:
        """The 401 for a request that sent no credentials."""
        return MissingCredentials(detail, {"www-authenticate": self.challenges()})

    def invalid(self, detail: str, error: str = "invalid_token") -> Unauthorized:
        """The 401 for credentials that are malformed or wrong."""
        return Unauthorized(detail, {"www-authenticate": self.challenge(error, detail)})

    def insufficient_scope(self, required: Iterable[str]) -> Forbidden:
        """The 403 for credentials without the scopes the route requires."""
        scopes = tuple(required)
        return Forbidden(
            f"This needs the scope{'s' if len(scopes) != 1 else ''} {', '.join(scopes)}.",
            {"www-authenticate": self.challenge("insufficient_scope", None, scopes)},
            extra={"required_scopes": list(scopes)},
        )

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI security scheme object, with the scheme's ``description``. A scheme of
        your own overrides it.

        Example::

            assert HTTPBasic(description="Staff only.").openapi() == {
                "type": "http", "scheme": "basic", "description": "Staff only."}
        """
        if type(self).describe is not SecurityScheme.describe:
            # a scheme written for the old hook: still described, and told of the change
            warnings.warn(f"{type(self).__name__}.describe() is deprecated: override "
                          "openapi() instead (it returns the whole security scheme object, "
                          "description included)", DeprecationWarning, stacklevel=2)
            return self._described(self.describe())
        raise NotImplementedError(f"{type(self).__name__} must override openapi()")

    def describe(self) -> dict[str, Any]:
        """Deprecated: call :meth:`openapi` (one method describes a scheme; ``describe``
        left out its ``description``)."""
        warnings.warn("SecurityScheme.describe() is deprecated: call openapi()",
                      DeprecationWarning, stacklevel=2)
        return self.openapi()

    def _described(self, described: dict[str, Any]) -> dict[str, Any]:
        """``described`` with the scheme's ``description``, when it has one."""
        if self.description:
            described["description"] = self.description
        return described

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.scheme_name!r}>"


# RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


class HTTPBearer(SecurityScheme):
    """A token in ``Authorization: Bearer <token>`` (RFC 6750); ``prefix`` changes the word
    (``HTTPBearer(prefix="Token")`` reads ``Authorization: Token <token>``), or gives several,
    any of which a client may send (``HTTPBearer(prefix=("Bearer", "Token"))``; the first is
    the one the API document shows).

    Gives :class:`BearerCredentials` (``scheme``: the prefix the client sent, spelled as
    given here). No header, or another scheme's: 401 with ``WWW-Authenticate: Bearer`` (a
    challenge per prefix); a token RFC 6750 does not allow: 401 ``invalid_token``.

    Example::

        either_word = HTTPBearer(prefix=("Bearer", "Token"))

        @app.get("/me")
        async def me(token: Annotated[BearerCredentials, Security(either_word)]) -> str:
            return f"{token.scheme}: {token.token}"
    """

    default_name = "bearerAuth"

    def __init__(self, *, prefix: str | Sequence[str] = "Bearer",
                 bearer_format: str | None = None, name: str | None = None,
                 realm: str | None = None, description: str | None = None) -> None:
        super().__init__(name=name, realm=realm, description=description)
        prefixes = (prefix,) if isinstance(prefix, str) else tuple(dict.fromkeys(prefix))
        if not prefixes or not all(p and " " not in p for p in prefixes):
            raise ValueError(f"HTTPBearer needs one or more prefixes without spaces, not "
                             f"{prefix!r}")
        #: every word accepted before the token; the first is :attr:`prefix`
        self.prefixes: tuple[str, ...] = prefixes
        self.prefix = prefixes[0]
        self.auth_scheme = self.prefix
        self.bearer_format = bearer_format
        self._by_word = {p.lower(): p for p in prefixes}

    def challenges(self) -> str:
        # one challenge per accepted prefix (RFC 9110 §11.6.1 allows a list of them)
        return ", ".join(self.challenge(auth_scheme=p) for p in self.prefixes)

    def read_token(self, connection: HTTPConnection) -> str:
        """The token, or the 401 to answer."""
        return self._read(connection)[1]

    def _read(self, connection: HTTPConnection) -> tuple[str, str]:
        header: str | None = connection.headers.get("authorization")
        scheme, _, token = (header or "").strip().partition(" ")
        prefix = self._by_word.get(scheme.lower())
        if header is None or prefix is None:
            raise self.missing(f"Send an Authorization: {self.prefix} <token> header.")
        token = token.strip()
        if not token:
            raise self._invalid(prefix, "The Authorization header has no token.",
                                "invalid_request")
        if _B64TOKEN.fullmatch(token) is None:
            raise self._invalid(prefix, "The token is malformed.")
        return prefix, token

    def _invalid(self, prefix: str, detail: str, error: str = "invalid_token") -> Unauthorized:
        return Unauthorized(detail, {"www-authenticate": self.challenge(
            error, detail, auth_scheme=prefix)})

    async def __call__(self, connection: HTTPConnection) -> BearerCredentials:
        return BearerCredentials(*self._read(connection))

    def openapi(self) -> dict[str, Any]:
        others = [f"`Authorization: {p} <token>`" for p in self.prefixes[1:]]
        if self.prefix.lower() != "bearer":
            # OpenAPI's http "bearer" means the word Bearer: another word is an API key
            described: dict[str, Any] = {
                "type": "apiKey", "in": "header", "name": "Authorization",
                "description": " or ".join(f"{p} <token>" for p in self.prefixes)}
        else:
            described = {"type": "http", "scheme": "bearer"}
            if self.bearer_format:
                described["bearerFormat"] = self.bearer_format
            if others:
                described["description"] = f"Also accepted: {', '.join(others)}."
        return self._described(described)


class HTTPBasic(SecurityScheme):
    """A user name and password in ``Authorization: Basic <base64>`` (RFC 7617).

    Gives :class:`BasicCredentials`; the challenge is ``Basic realm="...", charset="UTF-8"``.
    Compare the password with :func:`constant_time_compare` (``secrets.compare_digest``
    fails on a non-ASCII password, which UTF-8 Basic credentials may carry).
    """

    auth_scheme = "Basic"
    default_name = "basicAuth"

    def __init__(self, *, realm: str = "joey", name: str | None = None,
                 description: str | None = None) -> None:
        super().__init__(name=name, realm=realm, description=description)

    def challenge_params(self) -> list[str]:
        return ['charset="UTF-8"']

    def challenge(self, error: str | None = None, description: str | None = None,
                  scopes: Iterable[str] = (), *, auth_scheme: str | None = None) -> str:
        # RFC 7617 defines no error parameters
        return super().challenge(None, None, (), auth_scheme=auth_scheme)

    async def __call__(self, connection: HTTPConnection) -> BasicCredentials:
        header = connection.headers.get("authorization")
        scheme, _, encoded = (header or "").strip().partition(" ")
        if header is None or scheme.lower() != "basic":
            raise self.missing("Send an Authorization: Basic header.")
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except ValueError:  # not Base64 (binascii.Error), not ASCII to begin with, not UTF-8
            raise self.invalid("The Basic credentials are not Base64 of UTF-8 text.") from None
        username, colon, password = decoded.partition(":")
        if not colon:
            raise self.invalid("The Basic credentials have no ':' between user and password.")
        return BasicCredentials(username, password)

    def openapi(self) -> dict[str, Any]:
        return self._described({"type": "http", "scheme": "basic"})


class _APIKey(SecurityScheme):
    location: Literal["header", "query", "cookie"] = "header"
    auth_scheme = "APIKey"

    def __init__(self, key_name: str, *, name: str | None = None, realm: str | None = None,
                 description: str | None = None) -> None:
        super().__init__(name=name, realm=realm, description=description)
        self.key_name = key_name

    def challenge_params(self) -> list[str]:
        return [f"name={_quote(self.key_name)}", f"in={_quote(self.location)}"]

    def lookup(self, connection: HTTPConnection) -> str | None:
        raise NotImplementedError  # pragma: no cover

    async def __call__(self, connection: HTTPConnection) -> APIKeyCredentials:
        key = self.lookup(connection)
        if not key:
            raise self.missing(f"Send the API key in the {self.key_name!r} {self.location}.")
        return APIKeyCredentials(key, self.location, self.key_name)

    def openapi(self) -> dict[str, Any]:
        return self._described({"type": "apiKey", "in": self.location, "name": self.key_name})


class APIKeyHeader(_APIKey):
    """An API key in a header (``APIKeyHeader("X-API-Key")``). Gives
    :class:`APIKeyCredentials`; without it, 401 with ``WWW-Authenticate: APIKey
    name="X-API-Key", in="header"``."""

    location = "header"
    default_name = "apiKeyHeader"

    def lookup(self, connection: HTTPConnection) -> str | None:
        key: str | None = connection.headers.get(self.key_name.lower())
        return key


class APIKeyQuery(_APIKey):
    """An API key in the query string (``APIKeyQuery("api_key")``)."""

    location = "query"
    default_name = "apiKeyQuery"

    def lookup(self, connection: HTTPConnection) -> str | None:
        key: str | None = connection.query_params.get(self.key_name)
        return key


class APIKeyCookie(_APIKey):
    """An API key in a cookie (``APIKeyCookie("session")``)."""

    location = "cookie"
    default_name = "apiKeyCookie"

    def lookup(self, connection: HTTPConnection) -> str | None:
        return connection.cookies.get(self.key_name)


class OAuth2PasswordBearer(HTTPBearer):
    """OAuth 2 resource owner password flow: clients get a token at ``token_url`` and send
    it as ``Authorization: Bearer <token>``. ``scopes`` (name → description) are listed in
    the API document. Gives :class:`BearerCredentials`."""

    default_name = "oauth2"

    def __init__(self, token_url: str, *, scopes: Mapping[str, str] | None = None,
                 refresh_url: str | None = None, name: str | None = None,
                 realm: str | None = None, description: str | None = None) -> None:
        super().__init__(name=name, realm=realm, description=description)
        self.token_url = token_url
        self.scopes = dict(scopes or {})
        self.refresh_url = refresh_url

    def openapi(self) -> dict[str, Any]:
        flow: dict[str, Any] = {"tokenUrl": self.token_url, "scopes": self.scopes}
        if self.refresh_url:
            flow["refreshUrl"] = self.refresh_url
        return self._described({"type": "oauth2", "flows": {"password": flow}})


class OpenIDConnect(HTTPBearer):
    """OpenID Connect: the provider is described at ``url`` (its discovery document); the
    client sends the ID or access token as ``Authorization: Bearer <token>``. Gives
    :class:`BearerCredentials` (verify them with :class:`joey.security.jwt.JWTBearer`)."""

    default_name = "openIdConnect"

    def __init__(self, url: str, *, name: str | None = None, realm: str | None = None,
                 description: str | None = None) -> None:
        super().__init__(name=name, realm=realm, description=description)
        self.url = url

    def openapi(self) -> dict[str, Any]:
        return self._described({"type": "openIdConnect", "openIdConnectUrl": self.url})


def require_scopes(granted: Iterable[str], route: RouteInfo,
                   scheme: SecurityScheme | None = None) -> None:
    """Raise the 403 ``insufficient_scope`` unless ``granted`` holds every scope ``route``
    requires (``Security(..., scopes=[...])``).

    Example::

        import msgspec

        from joey.security import Security

        class User(msgspec.Struct):
            name: str
            scopes: list[str]

        USERS = {"s3cret": User("ann", ["articles:write"])}
        oauth2 = OAuth2PasswordBearer("/token")

        async def current_user(
            token: Annotated[BearerCredentials, Security(oauth2)], route: RouteInfo,
        ) -> User:
            user = USERS.get(token.token)
            if user is None:
                raise oauth2.invalid("Unknown token.")
            require_scopes(user.scopes, route, oauth2)
            return user
    """
    have = set(granted)
    missing = [scope for scope in route.scopes if scope not in have]
    if missing:
        raise (scheme or HTTPBearer()).insufficient_scope(route.scopes)


__all__ = [
    "APIKeyCookie",
    "APIKeyCredentials",
    "APIKeyHeader",
    "APIKeyQuery",
    "BasicCredentials",
    "BearerCredentials",
    "HTTPBasic",
    "HTTPBearer",
    "OAuth2PasswordBearer",
    "OpenIDConnect",
    "SecurityScheme",
    "constant_time_compare",
    "require_scopes",
]
