"""Rate limits in one process: policies, the 429 and its headers, keys, failures."""

from __future__ import annotations

from typing import Annotated

import pytest

from joey import App, Header, JSONResponse, Request, Response, Router
from joey.params.markers import Security
from joey.ratelimit import (
    Decision,
    InMemoryRateLimits,
    Policy,
    RateLimit,
    RateLimitExceeded,
    client_address,
)
from joey.testing import TestClient

from ..asgi import close_test_clients  # noqa: F401 - autouse fixture


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def allowed(backend: InMemoryRateLimits, policy: str, n: int, limit: int = 3,
                  window: float = 10) -> list[bool]:
    return [(await backend.hit("k", limit, window, policy)).allowed  # type: ignore[arg-type]
            for _ in range(n)]


async def test_fixed_window_allows_exactly_limit_per_window() -> None:
    clock = Clock(1000.0)
    backend = InMemoryRateLimits(clock=clock)
    assert await allowed(backend, "fixed", 4) == [True, True, True, False]
    clock.now = 1009.9
    refused = await backend.hit("k", 3, 10, "fixed")
    assert refused.allowed is False
    assert refused.reset == pytest.approx(0.1)
    clock.now = 1010.0  # the next window
    assert await allowed(backend, "fixed", 4) == [True, True, True, False]
    assert (await backend.hit("other", 3, 10, "fixed")) == Decision(True, 2, 10.0)


async def test_sliding_window_counts_part_of_the_previous_window() -> None:
    clock = Clock(1000.0)
    backend = InMemoryRateLimits(clock=clock)
    assert await allowed(backend, "sliding", 3, limit=4) == [True, True, True]
    clock.now = 1015.0  # half of the previous window still counts: 3 * 0.5 = 1.5
    assert await allowed(backend, "sliding", 3, limit=4) == [True, True, False]
    refused = await backend.hit("k", 4, 10, "sliding")
    assert 0 < refused.reset <= 5
    clock.now = 1030.0  # two windows later nothing counts
    assert await allowed(backend, "sliding", 5, limit=4) == [True, True, True, True, False]


async def test_token_bucket_bursts_then_refills_at_the_rate() -> None:
    clock = Clock(0.0)
    backend = InMemoryRateLimits(clock=clock)
    assert await allowed(backend, "token_bucket", 4, limit=3, window=3) == [
        True, True, True, False]
    refused = await backend.hit("k", 3, 3, "token_bucket")
    assert refused.reset == pytest.approx(1.0)
    clock.now = 1.0  # one token back
    assert await allowed(backend, "token_bucket", 2, limit=3, window=3) == [True, False]
    clock.now = 100.0  # never more than the capacity
    assert await allowed(backend, "token_bucket", 4, limit=3, window=3) == [
        True, True, True, False]


async def test_old_windows_are_swept() -> None:
    clock = Clock(0.0)
    backend = InMemoryRateLimits(clock=clock, sweep_every=5)
    for key in "abcd":
        await backend.hit(key, 1, 1, "fixed")
    assert len(backend) == 4
    clock.now = 10.0
    await backend.hit("e", 1, 1, "fixed")
    assert len(backend) == 1


@pytest.mark.parametrize("policy", ["fixed", "sliding", "token_bucket"])
async def test_limits_of_other_windows_never_reset_a_budget(policy: Policy) -> None:
    """One backend for a 5-per-hour login limit and a 1-per-second one: each key's state
    expires by its own limit's window, whichever limit's hit sweeps the table."""
    clock = Clock(1000.0)
    backend = InMemoryRateLimits(clock=clock, sweep_every=1)  # a sweep at every hit
    login = RateLimit(5, 3600, policy=policy, backend=backend, name="login")
    burst = RateLimit(1, 1, backend=backend, name="burst")
    for _ in range(5):
        await login.check("ann")
    with pytest.raises(RateLimitExceeded):
        await login.check("ann")
    for _ in range(3):
        clock.now += 5  # the one-second windows come and go
        await burst.check("bob")
        with pytest.raises(RateLimitExceeded):
            await login.check("ann")  # the hour's budget stays spent
    clock.now += 2 * 3600  # every state is out of date: swept (the table stays bounded)
    await burst.check("bob")
    assert len(backend) == 1


async def test_a_sliding_window_is_kept_while_it_still_weighs() -> None:
    clock = Clock(0.0)
    backend = InMemoryRateLimits(clock=clock, sweep_every=1)
    assert await allowed(backend, "sliding", 4, limit=4) == [True] * 4
    clock.now = 15.0  # half of the previous window still counts: 2 of the 4
    await backend.hit("other", 1, 1, "fixed")  # sweeps
    assert await allowed(backend, "sliding", 3, limit=4) == [True, True, False]


def build(limit: RateLimit) -> App:
    app = App()
    api = Router(prefix="/api", dependencies=[Security(limit)])

    @api.post("/items")
    async def create(item: dict[str, int]) -> dict[str, int]:
        return item

    @api.get("/items")
    async def items() -> list[int]:
        return []

    @app.get("/free")
    async def free() -> str:
        return "ok"

    app.include_router(api)
    return app


def test_over_the_limit_is_a_429_with_retry_after_and_ratelimit_headers() -> None:
    limit = RateLimit(2, 60, name="api")
    with TestClient(build(limit)) as client:
        assert client.get("/api/items").status_code == 200
        assert client.post("/api/items", json={"a": 1}).status_code == 200
        refused = client.post("/api/items", content=b"not even json")  # before the body
        assert refused.status_code == 429
        retry = int(refused.headers["retry-after"])
        assert 1 <= retry <= 60
        assert refused.headers["ratelimit-policy"] == '"api";q=2;w=60'
        assert refused.headers["ratelimit"] == f'"api";r=0;t={retry}'
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["status"] == 429
        assert [client.get("/free").status_code for _ in range(5)] == [200] * 5


def test_the_429_goes_through_the_exception_handlers() -> None:
    app = build(RateLimit(1, 60, name="custom"))

    @app.exception_handler(RateLimitExceeded)
    async def slow_down(request: Request, exc: RateLimitExceeded) -> Response:
        return JSONResponse({"slow": "down"}, status_code=429, headers=exc.headers)

    with TestClient(app) as client:
        client.get("/api/items")
        refused = client.get("/api/items")
    assert refused.json() == {"slow": "down"}
    assert refused.headers["ratelimit-policy"] == '"custom";q=1;w=60'


def test_a_limit_per_user_from_a_dependency() -> None:
    async def user(x_user: Annotated[str, Header()]) -> str:
        return x_user

    app = build(RateLimit(1, 60, key=Security(user), name="per-user"))
    with TestClient(app) as client:
        assert client.get("/api/items", headers={"x-user": "ann"}).status_code == 200
        assert client.get("/api/items", headers={"x-user": "bob"}).status_code == 200
        assert client.get("/api/items", headers={"x-user": "ann"}).status_code == 429
        # the key's dependency runs in the security phase: a missing header is a 422
        # before anything else
        assert client.get("/api/items").status_code == 422


def test_a_limit_keyed_by_a_dependency_stays_a_ratelimit_and_may_be_overridden() -> None:
    """Issue 24: the limit no longer swaps its own class to ask for its key; an override of
    the limit (by the object the user declared) still replaces it."""
    async def user(x_user: Annotated[str, Header()]) -> str:
        return x_user

    limit = RateLimit(1, 60, key=Security(user), name="per-user")
    assert type(limit) is RateLimit
    app = build(limit)

    async def no_limit() -> None:
        return None

    app.dependency_overrides[limit] = no_limit
    with TestClient(app) as client:
        for _ in range(3):
            assert client.get("/api/items", headers={"x-user": "ann"}).status_code == 200


def test_a_key_function_may_be_async() -> None:
    async def by_token(connection: object) -> str:
        return "same"

    with TestClient(build(RateLimit(1, 60, key=by_token))) as client:
        assert client.get("/api/items").status_code == 200
        assert client.get("/api/items").status_code == 429


class Broken:
    async def hit(self, key: str, limit: int, window: float, policy: str) -> Decision:
        raise ConnectionError("backend down")


def test_a_failing_backend_fails_closed_by_default_or_open_never_500(
        caplog: pytest.LogCaptureFixture) -> None:
    closed_limit = RateLimit(1, 60, backend=Broken(), retry_after=7)
    open_limit = RateLimit(1, 60, backend=Broken(), fail_open=True)
    with TestClient(build(closed_limit)) as client:
        refused = client.get("/api/items")
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "7"
    with TestClient(build(open_limit)) as client:
        assert [client.get("/api/items").status_code for _ in range(3)] == [200] * 3
    assert "backend failed (backend down); letting requests through" in caplog.text


class Flaky:
    """A backend that fails while ``down`` is set, and allows everything otherwise."""

    def __init__(self) -> None:
        self.down = True

    async def hit(self, key: str, limit: int, window: float, policy: str) -> Decision:
        if self.down:
            raise ConnectionError("backend down")
        return Decision(True, limit - 1, window)


@pytest.mark.parametrize("fail_open", [True, False])
def test_an_outage_is_logged_once_at_error_and_its_end_once(
        caplog: pytest.LogCaptureFixture, fail_open: bool) -> None:
    backend = Flaky()
    limit = RateLimit(5, 60, backend=backend, fail_open=fail_open, name="api")
    with TestClient(build(limit)) as client:
        statuses = [client.get("/api/items").status_code for _ in range(20)]
        assert statuses == [200 if fail_open else 503] * 20
        backend.down = False
        assert [client.get("/api/items").status_code for _ in range(3)] == [200] * 3
        backend.down = True
        client.get("/api/items")
    records = [r for r in caplog.records if "Rate limit 'api'" in r.getMessage()]
    assert [(r.levelname, r.getMessage().split(":")[0]) for r in records] == [
        ("ERROR", "Rate limit 'api' cannot count"),
        ("WARNING", "Rate limit 'api' counts again"),
        ("ERROR", "Rate limit 'api' cannot count"),  # the next outage is told again
    ]


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="limit >= 1"):
        RateLimit(0, 10)
    with pytest.raises(ValueError, match="policy must be one of"):
        RateLimit(1, 10, policy="leaky")  # type: ignore[arg-type]
    assert repr(RateLimit(5, 1.5)) == "<RateLimit 'fixed-5-per-1.5s' 5/1.5s fixed>"


def test_client_address_without_a_client() -> None:
    class NoClient:
        client = None

    assert client_address(NoClient()) == "unknown"  # type: ignore[arg-type]
