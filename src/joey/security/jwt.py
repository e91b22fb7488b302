"""JSON Web Tokens, verified with PyJWT (``pip install 'joey[jwt]'``).

:class:`JWTBearer` is a security scheme: it reads the token through another scheme (a
:class:`~joey.security.HTTPBearer` by default, or an ``OAuth2PasswordBearer`` /
``OpenIDConnect``), verifies its signature and claims with exactly the algorithms, audience,
issuer and leeway you give (nothing is guessed from the token's header), and checks the
route's scopes against the token's ``scope`` (space-separated) or ``scp`` claim.

<!-- docs-test: fragment: needs the identity provider's public key -->
Example::

    from joey.security import Security

    PUBLIC_KEY = os.environ["JWT_PUBLIC_KEY"]  # PEM
    auth = JWTBearer(key=PUBLIC_KEY, algorithms=["RS256"], audience="api",
                     issuer="https://id.example.com/")

    @app.delete("/articles/{slug}")
    async def delete(
        slug: str, token: Annotated[JWTCredentials, Security(auth, scopes=["articles:write"])],
    ) -> None: ...
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import jwt as pyjwt

from joey.requests import HTTPConnection
from joey.routeinfo import RouteInfo
from joey.security.schemes import HTTPBearer, SecurityScheme


@dataclasses.dataclass(frozen=True, slots=True)
class JWTCredentials:
    """A verified token: the raw ``token``, its ``claims``, and the ``scopes`` it grants."""

    token: str = dataclasses.field(repr=False)
    claims: Mapping[str, Any]
    scopes: frozenset[str]

    @property
    def subject(self) -> str | None:
        """The ``sub`` claim."""
        sub = self.claims.get("sub")
        return str(sub) if sub is not None else None


class JWTBearer(SecurityScheme):
    """Verify a JWT bearer token. ``key`` is the secret (HS*) or public key (RS*, ES*,
    EdDSA); ``algorithms`` must be given (never taken from the token). ``audience`` and
    ``issuer``, when given, must match; ``leeway`` (seconds) allows for clock skew;
    ``require`` lists claims that must be present (``exp`` by default)."""

    def __init__(self, key: Any, *, algorithms: Sequence[str], audience: str | None = None,
                 issuer: str | None = None, leeway: float = 0,
                 require: Sequence[str] = ("exp",), scheme: HTTPBearer | None = None) -> None:
        if not algorithms:
            raise ValueError("JWTBearer needs the algorithms to accept, e.g. ['HS256']")
        if any(a.lower() == "none" for a in algorithms):
            raise ValueError("JWTBearer refuses the 'none' algorithm: tokens must be signed")
        self.scheme = scheme or HTTPBearer(bearer_format="JWT")
        super().__init__(name=self.scheme.scheme_name, realm=self.scheme.realm,
                         description=self.scheme.description)
        self.auth_scheme = self.scheme.auth_scheme
        self.key = key
        self.algorithms = list(algorithms)
        self.audience = audience
        self.issuer = issuer
        self.leeway = leeway
        self.require = list(require)

    async def __call__(self, connection: HTTPConnection, route: RouteInfo) -> JWTCredentials:
        token = self.scheme.read_token(connection)
        try:
            claims = pyjwt.decode(
                token, self.key, algorithms=self.algorithms, audience=self.audience,
                issuer=self.issuer, leeway=self.leeway,
                options={"require": self.require, "verify_aud": self.audience is not None},
            )
        except pyjwt.ExpiredSignatureError:
            raise self.invalid("The token has expired.") from None
        except pyjwt.InvalidTokenError as exc:
            raise self.invalid(f"The token is not valid: {exc}.") from None
        scopes = _scopes(claims)
        if any(scope not in scopes for scope in route.scopes):
            raise self.insufficient_scope(route.scopes)
        return JWTCredentials(token, claims, scopes)

    def describe(self) -> dict[str, Any]:
        return self.scheme.describe()


def _scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    granted = claims.get("scope", claims.get("scp", ()))
    if isinstance(granted, str):
        return frozenset(granted.split())
    if isinstance(granted, list | tuple):
        return frozenset(str(scope) for scope in granted)
    return frozenset()


__all__ = [
    "JWTBearer",
    "JWTCredentials",
]
