"""Rate limits: at most ``limit`` requests per ``window`` seconds, per client or per key.

A :class:`RateLimit` is a security dependency: declared for the app, a router or a route
(``dependencies=[Security(limit)]``) it runs in the security phase, after routing and before
the body is read, so a client over its limit costs one counter update. Over the limit the
request is answered ``429 Too Many Requests`` through the app's exception handlers
(:class:`RateLimitExceeded`), with ``Retry-After`` and the IETF ``RateLimit`` and
``RateLimit-Policy`` headers (draft-ietf-httpapi-ratelimit-headers):

```text
RateLimit-Policy: "api";q=100;w=60
RateLimit: "api";r=0;t=17
```

Policies:

* ``fixed``: a counter per window (``0-60 s``, ``60-120 s``...): exactly ``limit`` per window;
* ``sliding``: the current window's count plus the previous one's, weighted by how much of it
  is still inside the last ``window`` seconds: no burst of twice ``limit`` at a boundary;
* ``token_bucket``: ``limit`` tokens, refilled at ``limit / window`` per second: bursts up to
  ``limit``, then a steady rate.

Backends: :class:`InMemoryRateLimits` (one process) and :class:`RedisRateLimits`, which holds
the counts in Redis for every worker process and machine: one atomic script, one round trip
per request, the time taken from the Redis server so that clocks of the machines do not
matter. When the backend fails, the limit fails closed by default: ``503 Service Unavailable``
with ``Retry-After`` (never a 500, never a request let through unseen); ``fail_open=True``
lets requests through instead. Either way the first failure of an outage is logged at ERROR
(once, not per request), and the recovery at WARNING.

The key is the client's address by default; ``key=fn`` takes ``fn(connection)``, and
``key=Security(current_user)`` (or ``Depends``) the value of a dependency, so a limit can be
per user. Each :class:`RateLimit` is one budget, named by ``name`` in the backend: give two
limits that must count separately two names.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, NamedTuple, Protocol

from joey._redis import Script
from joey.exceptions import HTTPError, ServiceUnavailable, TooManyRequests
from joey.params.markers import Depends, Security
from joey.requests import HTTPConnection
from joey.routeinfo import RouteInfo

if TYPE_CHECKING:
    from redis.asyncio import Redis, RedisCluster

    from joey.metrics.families import RateLimitMetrics

logger = logging.getLogger("joey")

Policy = Literal["fixed", "sliding", "token_bucket"]
POLICIES = ("fixed", "sliding", "token_bucket")


class Decision(NamedTuple):
    """What a backend decided for one request."""

    allowed: bool
    #: requests (or tokens) left after this one
    remaining: int
    #: seconds until the quota is available again (the window's end, or the next token)
    reset: float


class RateLimitBackend(Protocol):
    async def hit(self, key: str, limit: int, window: float, policy: Policy) -> Decision:
        """Count one request for ``key`` and say whether it is allowed."""


class RateLimitExceeded(TooManyRequests):
    """429: the client is over its limit; carries ``Retry-After`` and the RateLimit
    headers."""

    #: the headers every 429 of a limit carries besides ``Retry-After``, for the API document
    openapi_headers: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "RateLimit": {"schema": {"type": "string"}, "description": "the limit's remaining "
                      'quota and seconds to its reset: "api";r=0;t=17'},
        "RateLimit-Policy": {"schema": {"type": "string"}, "description": "the limit: "
                             '"api";q=100;w=60 (100 requests per 60 seconds)'},
    }


class RateLimitUnavailable(ServiceUnavailable):
    """503: the rate limit's backend failed and the limit is configured to fail closed."""


# --- in memory ------------------------------------------------------------------------------


class InMemoryRateLimits:
    """Counts in this process (one worker). ``clock`` returns seconds (monotonic by default).

    Each key's state records when it expires, by its own limit's window: a fixed window's
    count at the window's end, a sliding window's a window later (it still weighs on the next
    one), a token bucket once it would be full again. Every ``sweep_every`` hits the expired
    states are dropped, so memory stays bounded by the clients seen lately, and limits of any
    windows can share one backend.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 sweep_every: int = 10_000) -> None:
        self._clock = clock
        # key -> (window start, count in it, count in the window before, expires at)
        self._windows: dict[str, tuple[float, float, float, float]] = {}
        # key -> (tokens left, when they were counted, expires at)
        self._buckets: dict[str, tuple[float, float, float]] = {}
        self._sweep_every = sweep_every
        self._hits = 0

    async def hit(self, key: str, limit: int, window: float, policy: Policy) -> Decision:
        now = self._clock()
        self._hits += 1
        if self._hits % self._sweep_every == 0:
            self._sweep(now)
        if policy == "token_bucket":
            return self._token_bucket(key, limit, window, now)
        start = now - (now % window)
        # the previous window's count weighs on a sliding window until this one ends
        expires = start + (2 * window if policy == "sliding" else window)
        began, count, previous, _ = self._windows.get(key, (start, 0.0, 0.0, expires))
        if began != start:
            previous = count if began == start - window else 0.0
            count = 0.0
        elapsed = now - start
        estimate = count + (previous * (window - elapsed) / window if policy == "sliding" else 0)
        if estimate + 1 > limit:
            self._windows[key] = (start, count, previous, expires)
            return Decision(False, 0, _sliding_retry(previous, count, limit, window, elapsed)
                            if policy == "sliding" else window - elapsed)
        self._windows[key] = (start, count + 1, previous, expires)
        return Decision(True, max(0, math.floor(limit - estimate - 1)), window - elapsed)

    def _token_bucket(self, key: str, limit: int, window: float, now: float) -> Decision:
        rate = limit / window
        tokens, last, _ = self._buckets.get(key, (float(limit), now, now))
        tokens = min(float(limit), tokens + (now - last) * rate)
        allowed = tokens >= 1
        if allowed:
            tokens -= 1
        # once full again, a bucket is the same as none
        self._buckets[key] = (tokens, now, now + (limit - tokens) / rate)
        if allowed:
            return Decision(True, math.floor(tokens), (limit - tokens) / rate)
        return Decision(False, 0, (1 - tokens) / rate)

    def _sweep(self, now: float) -> None:
        for table in (self._windows, self._buckets):
            for key in [k for k, state in table.items() if state[-1] <= now]:
                del table[key]

    def __len__(self) -> int:
        return len(self._windows) + len(self._buckets)


def _sliding_retry(previous: float, count: float, limit: int, window: float,
                   elapsed: float) -> float:
    """Seconds until the weighted count leaves room for one more request."""
    if count + 1 > limit or previous <= 0:
        return window - elapsed
    # previous * (window - elapsed - t) / window + count + 1 <= limit
    needed = (previous * (window - elapsed) / window + count + 1 - limit) * window / previous
    return max(0.0, min(needed, window - elapsed))


# --- Redis ------------------------------------------------------------------------------------

# One script per policy; time from the server (TIME), milliseconds; returns
# {allowed, remaining, reset_ms}. Scripts run atomically: concurrent workers never race.
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
"""
# Each script touches only the one key it is given (a hash): on a Redis Cluster it runs on the
# shard of that key, and limits spread over the shards by key.
_FIXED = _NOW + """
local start = now - (now % window)
local f = redis.call('HMGET', KEYS[1], 'w', 'n')
local count = 1
if tonumber(f[1]) == start then count = tonumber(f[2]) + 1 end
redis.call('HSET', KEYS[1], 'w', start, 'n', count)
local reset = start + window - now
if count == 1 then redis.call('PEXPIRE', KEYS[1], reset) end
if count > limit then return {0, 0, reset} end
return {1, limit - count, reset}
"""
_SLIDING = _NOW + """
local start = now - (now % window)
local f = redis.call('HMGET', KEYS[1], 'w', 'n', 'p')
local seen = tonumber(f[1])
local count, previous = 0, 0
if seen == start then
  count, previous = tonumber(f[2]) or 0, tonumber(f[3]) or 0
elseif seen == start - window then
  previous = tonumber(f[2]) or 0
end
local elapsed = now - start
local estimate = count + previous * (window - elapsed) / window
if estimate + 1 > limit then
  local retry = window - elapsed
  if count + 1 <= limit and previous > 0 then
    retry = math.min(retry, math.ceil((estimate + 1 - limit) * window / previous))
  end
  return {0, 0, retry}
end
redis.call('HSET', KEYS[1], 'w', start, 'n', count + 1, 'p', previous)
redis.call('PEXPIRE', KEYS[1], window * 2)
return {1, math.floor(limit - estimate - 1), window - elapsed}
"""
_TOKEN_BUCKET = _NOW + """
local rate = limit / window
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or limit
local last = tonumber(state[2]) or now
tokens = math.min(limit, tokens + math.max(0, now - last) * rate)
local allowed = 0
local reset = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
  reset = math.ceil((limit - tokens) / rate)
else
  reset = math.ceil((1 - tokens) / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], window)
return {allowed, math.floor(tokens), reset}
"""
_SCRIPTS = {"fixed": _FIXED, "sliding": _SLIDING, "token_bucket": _TOKEN_BUCKET}


class RedisRateLimits:
    """Counts in Redis, shared by every worker and machine. Each request is one ``EVALSHA``
    (atomic) on one key; ``timeout`` bounds it, so a Redis that hangs fails like one that is
    down.

    ``client``: a ready ``redis.asyncio`` client (``Redis``, ``RedisCluster``, or a Sentinel
    master from ``Sentinel(...).master_for(...)``), yours to create and close; or a URL, for
    which this backend creates a client of its own, closed by :meth:`aclose`. On a cluster
    each limit key hashes to its own slot: the limits spread over the shards.

    <!-- docs-test: fragment: needs a Redis server -->
    Example::

        from redis.asyncio import Redis

        limits = RedisRateLimits(Redis.from_url(os.environ["REDIS_URL"]))
        api_limit = RateLimit(100, 60, backend=limits, name="api")
    """

    def __init__(self, client: Redis | RedisCluster | str, *,
                 prefix: str = "joey:ratelimit:", timeout: float = 0.5) -> None:
        if isinstance(client, str):
            from joey._redis import from_url

            self._owned = True
            client = from_url(client, socket_timeout=timeout, socket_connect_timeout=timeout)
        else:
            self._owned = False
        self._client = client
        self._prefix = prefix
        self._timeout = timeout
        self._scripts = {policy: Script(client, source)
                         for policy, source in _SCRIPTS.items()}

    async def hit(self, key: str, limit: int, window: float, policy: Policy) -> Decision:
        window_ms = max(1, round(window * 1000))
        async with asyncio.timeout(self._timeout):
            allowed, remaining, reset_ms = await self._scripts[policy](
                keys=[self._prefix + key], args=[limit, window_ms])
        return Decision(bool(allowed), int(remaining), int(reset_ms) / 1000)

    async def aclose(self) -> None:
        """Close the client this backend created from a URL; a client passed in stays open
        (its owner closes it)."""
        if self._owned:
            await self._client.aclose()


# --- the dependency ---------------------------------------------------------------------------

KeyFunction = Callable[[HTTPConnection], "str | Awaitable[str]"]


def client_address(connection: HTTPConnection) -> str:
    """The default key: the client's IP address (behind a proxy, make the server trust its
    forwarded headers, e.g. uvicorn's ``--forwarded-allow-ips``)."""
    client = connection.client
    return client.host if client is not None else "unknown"


class RateLimit:
    """At most ``limit`` requests per ``window`` seconds for each key (see the module
    docstring). Declare it with ``dependencies=[Security(limit)]`` on the app, a router or a
    route.

    Example::

        from joey.security import Security

        per_client = RateLimit(10, 60, name="login")

        @app.post("/login", dependencies=[Security(per_client)])
        async def login(form: Annotated[dict[str, str], Form()]) -> Response:
            return Response(status_code=204)
    """

    __joey_security__ = True

    def __init__(self, limit: int, window: float, *, policy: Policy = "fixed",
                 backend: RateLimitBackend | None = None,
                 key: KeyFunction | Depends = client_address, name: str | None = None,
                 fail_open: bool = False, retry_after: int = 5) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("RateLimit needs limit >= 1 and window > 0 seconds")
        if policy not in POLICIES:
            raise ValueError(f"RateLimit policy must be one of {POLICIES}, not {policy!r}")
        self.limit = limit
        self.window = window
        self.policy: Policy = policy
        self.backend: RateLimitBackend = backend if backend is not None else (
            InMemoryRateLimits())
        self.name = name or f"{policy}-{limit}-per-{window:g}s"
        self.fail_open = fail_open
        self.retry_after = retry_after
        self._failing = False  # the backend's last answer was a failure (logged once)
        self.policy_header = f'"{self.name}";q={limit};w={math.ceil(window)}'
        #: where decisions are reported (an app with ``metrics=`` sets it at startup)
        self.metrics: RateLimitMetrics | None = None
        if isinstance(key, Depends):
            # the key is a dependency's value: give __call__ a parameter that asks for it
            named = key.named_dependency("RateLimit(key=...)")
            marker = key if isinstance(key, Security) else Security(named)
            self.key_function: KeyFunction | None = None
            self.__joey_dependency__ = self._keyed_by(marker)
        else:
            self.key_function = key

    @property
    def __joey_raises__(self) -> tuple[type[HTTPError], ...]:
        """What :meth:`check` answers instead of the handler (the route model reads it): the
        429, and the 503 when the limit fails closed."""
        if self.fail_open:
            return (RateLimitExceeded,)
        return (RateLimitExceeded, RateLimitUnavailable)

    async def __call__(self, connection: HTTPConnection, route: RouteInfo) -> None:
        assert self.key_function is not None
        key = self.key_function(connection)
        if inspect.isawaitable(key):
            key = await key
        await self.check(str(key))

    def report_to(self, metrics: RateLimitMetrics) -> None:
        """Count this limit's decisions in ``metrics`` (an app with ``metrics=`` calls this
        for every limit its routes declare)."""
        self.metrics = metrics

    async def check(self, key: str) -> Decision:
        """Count a request for ``key``; raise the 429 (or the 503) when it is refused."""
        metrics = self.metrics
        try:
            decision = await self.backend.hit(f"{self.name}:{key}", self.limit, self.window,
                                              self.policy)
        except Exception as exc:
            if isinstance(exc, RateLimitExceeded):  # pragma: no cover - a backend's own
                raise
            if not self._failing:  # once per outage: a failing backend is not a log flood
                self._failing = True
                logger.error(
                    "Rate limit %r cannot count: its backend failed (%s); %s until it "
                    "recovers", self.name, exc or type(exc).__name__,
                    "letting requests through (fail_open=True)" if self.fail_open
                    else f"answering 503 (Retry-After: {self.retry_after})")
            if metrics is not None:
                metrics.decisions.labels(
                    self.name, "failed_open" if self.fail_open else "unavailable").inc()
            if self.fail_open:
                return Decision(True, self.limit, self.window)
            raise RateLimitUnavailable("The rate limit cannot be checked right now.",
                                       retry_after=self.retry_after) from exc
        if self._failing:
            self._failing = False
            logger.warning("Rate limit %r counts again: its backend recovered", self.name)
        if metrics is not None:
            metrics.decisions.labels(self.name,
                                     "allowed" if decision.allowed else "limited").inc()
        if not decision.allowed:
            seconds = max(1, math.ceil(decision.reset))
            raise RateLimitExceeded(
                f"Too many requests: at most {self.limit} per {self.window:g} seconds.",
                {"ratelimit-policy": self.policy_header,
                 "ratelimit": f'"{self.name}";r=0;t={seconds}'},
                retry_after=seconds,
            )
        return decision

    def _keyed_by(self, marker: Depends) -> Callable[..., Awaitable[None]]:
        """What runs in this limit's place when its key is a dependency's value: a function
        whose signature asks for that value (plans read ``__joey_dependency__``)."""
        async def check_keyed(connection: HTTPConnection, route: RouteInfo, key: Any) -> None:
            await self.check(str(key))

        check_keyed.__annotations__ = {"connection": HTTPConnection, "route": RouteInfo,
                                       "key": Annotated[Any, marker], "return": None}
        check_keyed.__qualname__ = f"RateLimit({self.name!r})"
        return check_keyed

    def __repr__(self) -> str:
        return f"<RateLimit {self.name!r} {self.limit}/{self.window:g}s {self.policy}>"


__all__ = [
    "POLICIES",
    "Decision",
    "InMemoryRateLimits",
    "KeyFunction",
    "Policy",
    "RateLimit",
    "RateLimitBackend",
    "RateLimitExceeded",
    "RateLimitUnavailable",
    "RedisRateLimits",
    "client_address",
]
