"""Order of evaluation: routing → security → parameters and dependencies → body → handler."""

from __future__ import annotations

from typing import Annotated

import msgspec
import pytest

from joey import App, Depends, Header, Request, RouteInfo, Router
from joey.exceptions import Forbidden
from joey.params.markers import Security
from joey.security import BearerCredentials, HTTPBearer, require_scopes
from joey.testing import TestClient

from ..asgi import close_test_clients  # noqa: F401 - autouse fixture


class User(msgspec.Struct):
    email: str
    password: str


class Signup(msgspec.Struct):
    user: User


bearer = HTTPBearer(prefix="Token")
TOKENS = {"good": {"articles:write"}, "reader": set()}


async def current_user(token: Annotated[BearerCredentials, Security(bearer)],
                       route: RouteInfo) -> str:
    if token.token not in TOKENS:
        raise bearer.invalid("Unknown token.")
    require_scopes(TOKENS[token.token], route, bearer)
    return token.token


def build(calls: list[str]) -> App:
    app = App()

    async def audit(request: Request) -> None:
        calls.append(f"audit {request.method}")

    @app.post("/articles", status_code=201)
    async def create(
        body: Signup,
        user: Annotated[str, Security(current_user, scopes=["articles:write"])],
        _: Annotated[None, Depends(audit)],
    ) -> dict[str, str]:
        calls.append("handler")
        return {"by": user, "email": body.user.email}

    @app.get("/maybe")
    async def maybe(token: Annotated[BearerCredentials | None, Security(bearer)]) -> str:
        return token.token if token is not None else "anonymous"

    return app


def test_anonymous_with_a_bad_body_gets_401_not_422() -> None:
    calls: list[str] = []
    with TestClient(build(calls)) as client:
        anonymous = client.post("/articles", json={"user": {"email": 3}})
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"] == "Token"
        bad_token = client.post("/articles", json={"user": {}},
                                headers={"authorization": "Token nope"})
        assert bad_token.status_code == 401
        assert bad_token.headers["www-authenticate"] == (
            'Token error="invalid_token", error_description="Unknown token."')
        no_scope = client.post("/articles", json={"user": {}},
                               headers={"authorization": "Token reader"})
        assert no_scope.status_code == 403
        assert no_scope.headers["www-authenticate"] == (
            'Token error="insufficient_scope", scope="articles:write"')
        assert no_scope.json()["required_scopes"] == ["articles:write"]
        assert calls == []  # nothing else ran: no dependency, no handler
        invalid = client.post("/articles", json={"user": {"email": 3}},
                              headers={"authorization": "Token good"})
        assert invalid.status_code == 422
        errors = invalid.json()["errors"]
        assert [(e["location"], e["type"]) for e in errors] == [
            (["body", "user", "email"], "type"), (["body", "user", "password"], "missing")]
        ok = client.post("/articles", json={"user": {"email": "a@b.c", "password": "x"}},
                         headers={"authorization": "Token good"})
        assert ok.status_code == 201
        assert ok.json() == {"by": "good", "email": "a@b.c"}
        assert calls == ["audit POST", "handler"]


def test_optional_authentication_is_one_annotation() -> None:
    with TestClient(build([])) as client:
        assert client.get("/maybe").text == "anonymous"
        assert client.get("/maybe", headers={"authorization": "Token abc"}).text == "abc"
        # a credential that is present but malformed is still refused
        broken = client.get("/maybe", headers={"authorization": "Token a b"})
        assert broken.status_code == 401
        assert 'error="invalid_token"' in broken.headers["www-authenticate"]


def test_guards_at_app_router_and_route_level_see_the_route() -> None:
    seen: list[tuple[str, str, tuple[str, ...]]] = []

    def guard(level: str):  # type: ignore[no-untyped-def]
        async def check(route: RouteInfo, x_role: Annotated[str, Header()] = "") -> None:
            seen.append((level, route.name, route.tags))
            if "admin" in route.tags and x_role != "admin":
                raise Forbidden("Admins only.")
        return check

    app = App(dependencies=[Security(guard("app"))])
    admin = Router(prefix="/admin", tags=["admin"], dependencies=[Security(guard("router"))])

    @admin.post("/users", dependencies=[Security(guard("route"))])
    async def add_user(user: User) -> str:
        return user.email

    app.include_router(admin)
    with TestClient(app) as client:
        refused = client.post("/admin/users", content=b"not json at all")
        assert refused.status_code == 403
        assert seen == [("app", "add_user", ("admin",))]
        seen.clear()
        allowed = client.post("/admin/users", json={"email": "e", "password": "p"},
                              headers={"x-role": "admin"})
        assert allowed.status_code == 200
        assert [level for level, _, _ in seen] == ["app", "router", "route"]


def test_a_security_dependency_that_reads_the_body_is_refused_at_startup() -> None:
    async def from_body(user: User) -> str:
        return user.email

    app = App()

    @app.post("/x")
    async def handler(who: Annotated[str, Security(from_body)]) -> str:
        return who

    with pytest.raises(TypeError, match=r"security dependency .*from_body.* reads the request "
                                        r"body \(user\)"):
        app.routes  # noqa: B018 - builds the app


def test_routes_without_security_keep_their_fast_paths() -> None:
    from joey.params.plan import PlanBuilder
    from joey.params.run import AppScopedValues, compile_caller

    async def plain(request: Request) -> str:
        return "x"

    plan = PlanBuilder({}).build(plain, {})
    caller = compile_caller(plan, AppScopedValues(), lambda value: value)
    assert caller.__name__ == "call_with_connection"

    async def secured(token: Annotated[BearerCredentials, Security(bearer)]) -> str:
        return token.token

    plan = PlanBuilder({}).build(secured, {})
    assert compile_caller(plan, AppScopedValues(), lambda v: v).__name__ == "call_guarded"
