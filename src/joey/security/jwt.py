"""JSON Web Tokens, issued and verified with PyJWT (``pip install 'joey[jwt]'``).

:class:`JWTBearer` is a security scheme: it reads the token through another scheme (a
:class:`~joey.security.HTTPBearer` by default, or an ``OAuth2PasswordBearer`` /
``OpenIDConnect``), verifies its signature and claims with exactly the algorithms, audience,
issuer and leeway you give (nothing is guessed from the token's header), and checks the
route's scopes against the token's ``scope`` (space-separated) or ``scp`` claim. A token that
fails any check is a 401 ``invalid_token``, whatever its bytes.

It also issues tokens (:meth:`JWTBearer.issue`: ``exp``, ``iat``, ``iss`` and ``aud`` set
for you) and verifies tokens that arrive elsewhere than in a header (:meth:`JWTBearer.verify`:
a browser WebSocket's query string). The key can be a value, a function called for every
token (settings that tests change), or a dependency (``key=Depends(jwt_secret)``: resolved
for every request, so ``app.dependency_overrides`` reaches it).

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
import datetime
import inspect
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Annotated, Any

import jwt as pyjwt
from jwt.algorithms import get_default_algorithms

from joey.params.markers import Depends, Security
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


#: a key, or what gives it: a function called for every token, or a dependency
Key = Any


class JWTBearer(SecurityScheme):
    """Verify (and issue) JWT bearer tokens.

    ``key`` is the secret (HS*) or public key (RS*, ES*, EdDSA), or a function of no
    arguments that returns it (called for every token: ``key=lambda: settings.jwt_secret``),
    or ``Depends(fn)``: a dependency resolved for every request (``app.dependency_overrides``
    reaches it). ``algorithms`` must be given (never taken from the token); the first is the
    one :meth:`issue` signs with. ``audience`` and ``issuer``, when given, must match (and
    :meth:`issue` sets them); ``leeway`` (seconds) allows for clock skew; ``require`` lists
    claims that must be present (``exp`` by default). ``signing_key`` is the key :meth:`issue`
    signs with when it is not ``key`` (the private key of an asymmetric algorithm), given
    the same ways as ``key``.

    Example::

        auth = JWTBearer("a-long-random-secret-of-32-bytes-or-more", algorithms=["HS256"],
                         audience="api")
        token = auth.issue({"sub": "ann", "scope": "notes:read"}, expires_in=3600)
        assert auth.verify(token).subject == "ann"
    """

    def __init__(self, key: Key, *, algorithms: Sequence[str], audience: str | None = None,
                 issuer: str | None = None, leeway: float = 0,
                 require: Sequence[str] = ("exp",), scheme: HTTPBearer | None = None,
                 signing_key: Key = None) -> None:
        if not algorithms:
            raise ValueError("JWTBearer needs the algorithms to accept, e.g. ['HS256']")
        if any(a.lower() == "none" for a in algorithms):
            raise ValueError("JWTBearer refuses the 'none' algorithm: tokens must be signed")
        known = get_default_algorithms()
        unknown = [a for a in algorithms if a not in known]
        if unknown:
            raise ValueError(f"JWTBearer: unknown algorithm {unknown[0]!r} (PyJWT knows "
                             f"{', '.join(sorted(known))}; RS*, ES*, PS* and EdDSA need "
                             "the 'cryptography' package)")
        self.scheme = scheme or HTTPBearer(bearer_format="JWT")
        super().__init__(name=self.scheme.scheme_name, realm=self.scheme.realm,
                         description=self.scheme.description)
        self.auth_scheme = self.scheme.auth_scheme
        self.key = key
        self.signing_key = signing_key
        self.algorithms = list(algorithms)
        self.audience = audience
        self.issuer = issuer
        self.leeway = leeway
        self.require = list(require)
        for given in (key, signing_key):
            if inspect.iscoroutinefunction(given):
                raise TypeError("JWTBearer: a key function must be synchronous (it is called "
                                "for every token); for a key that must be awaited, use "
                                "key=Depends(fn)")
        if isinstance(key, str | bytes):
            _check_key(key, self.algorithms)
        if isinstance(key, Depends):
            # the key is a dependency's value: what runs for a request asks for it
            named = key.named_dependency("JWTBearer(key=...)")
            self.__joey_dependency__ = self._keyed_by(
                key if isinstance(key, Security) else Security(named))

    # -- issuing ---------------------------------------------------------------------------

    def issue(self, claims: Mapping[str, Any], *,
              expires_in: float | datetime.timedelta, key: Any = None) -> str:
        """A signed token with ``claims``, and ``exp`` (``expires_in`` seconds, or a
        ``timedelta``, from now) and ``iat`` (now); ``iss`` and ``aud`` when the scheme has an
        issuer or an audience and ``claims`` does not say otherwise. Signed with the first of
        ``algorithms`` and ``signing_key`` (or ``key``); ``key=`` gives the key for this call
        (needed when the scheme's key is a dependency, which only a request resolves).

        Example::

            import datetime

            SETTINGS = {"secret": "a-long-random-secret-of-32-bytes-or-more"}
            auth = JWTBearer(lambda: SETTINGS["secret"], algorithms=["HS256"])
            token = auth.issue({"sub": "ann"}, expires_in=datetime.timedelta(minutes=15))
            assert auth.verify(token).claims["exp"] - auth.verify(token).claims["iat"] == 900
        """
        seconds = (expires_in.total_seconds() if isinstance(expires_in, datetime.timedelta)
                   else float(expires_in))
        if seconds <= 0:
            raise ValueError("JWTBearer.issue needs expires_in > 0 seconds")
        now = int(time.time())
        payload: dict[str, Any] = dict(claims)
        payload["iat"] = now
        payload["exp"] = now + int(seconds)
        if self.issuer is not None:
            payload.setdefault("iss", self.issuer)
        if self.audience is not None:
            payload.setdefault("aud", self.audience)
        signing = key if key is not None else (
            self.signing_key if self.signing_key is not None else self.key)
        return pyjwt.encode(payload, self._resolve(signing, "issue"),
                            algorithm=self.algorithms[0])

    # -- verifying -------------------------------------------------------------------------

    def verify(self, token: str, *, scopes: Sequence[str] = (), key: Any = None,
               ) -> JWTCredentials:
        """The credentials of ``token``, verified as the scheme verifies a header's, for a
        token that arrives another way (a browser WebSocket's query string: browsers cannot
        set its headers). A token that fails any check raises the 401 ``invalid_token``
        (:class:`~joey.exceptions.Unauthorized`); one without every scope of ``scopes`` the
        403 ``insufficient_scope``. ``key=`` gives the key for this call (needed when the
        scheme's key is a dependency).

        Example::

            auth = JWTBearer("a-long-random-secret-of-32-bytes-or-more", algorithms=["HS256"])
            try:
                auth.verify("not-a-token")
            except Unauthorized as refused:
                assert refused.status_code == 401
        """
        resolved = self._resolve(key if key is not None else self.key, "verify")
        try:
            claims = pyjwt.decode(
                token, resolved, algorithms=self.algorithms, audience=self.audience,
                issuer=self.issuer, leeway=self.leeway,
                options={"require": self.require, "verify_aud": self.audience is not None},
            )
        except pyjwt.ExpiredSignatureError:
            raise self.invalid("The token has expired.") from None
        except pyjwt.InvalidKeyError:
            # the token names one of the algorithms, but not one the key is for
            raise self.invalid("The token is not valid: its algorithm does not fit the "
                               "key.") from None
        except RecursionError:
            # a header (anyone can send one) or payload nested too deep for the json module:
            # older PyJWT (2.8) lets the RecursionError through instead of a DecodeError
            raise self.invalid("The token is not valid: its JSON is nested too "
                               "deeply.") from None
        except (pyjwt.PyJWTError, ValueError, TypeError) as exc:
            # ValueError/TypeError: what a token's bytes can still make a key library raise
            raise self.invalid(f"The token is not valid: {exc}.") from None
        granted = _scopes(claims)
        if any(scope not in granted for scope in scopes):
            raise self.insufficient_scope(scopes)
        return JWTCredentials(token, claims, granted)

    async def __call__(self, connection: HTTPConnection, route: RouteInfo) -> JWTCredentials:
        return self.verify(self.scheme.read_token(connection), scopes=route.scopes)

    def _keyed_by(self, marker: Depends) -> Callable[..., Awaitable[JWTCredentials]]:
        """What runs in this scheme's place when its key is a dependency's value: a function
        whose signature asks for that value (plans read ``__joey_dependency__``)."""
        async def verify_keyed(connection: HTTPConnection, route: RouteInfo,
                               key: Any) -> JWTCredentials:
            return self.verify(self.scheme.read_token(connection), scopes=route.scopes,
                               key=key)

        verify_keyed.__annotations__ = {"connection": HTTPConnection, "route": RouteInfo,
                                        "key": Annotated[Any, marker],
                                        "return": JWTCredentials}
        verify_keyed.__qualname__ = f"JWTBearer({self.scheme_name!r})"
        return verify_keyed

    def _resolve(self, key: Any, what: str) -> Any:
        if isinstance(key, Depends):
            raise TypeError(f"JWTBearer.{what}: the key is a dependency, which only a request "
                            f"resolves; pass key= (the dependency's value) to {what}()")
        return key() if callable(key) else key

    def challenges(self) -> str:
        return self.scheme.challenges()

    def openapi(self) -> dict[str, Any]:
        return self.scheme.openapi()


def _check_key(key: str | bytes, algorithms: list[str]) -> None:
    """Refuse, at startup, a key that none of the algorithms can use (a PEM public key for
    HS256): every token would be refused."""
    known = get_default_algorithms()
    problems = []
    for name in algorithms:
        try:
            known[name].prepare_key(key)
        except (pyjwt.PyJWTError, ValueError, TypeError) as exc:
            problems.append(f"{name}: {exc}")
        else:
            return
    raise ValueError(f"JWTBearer: the key fits none of the algorithms ({'; '.join(problems)})")


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
