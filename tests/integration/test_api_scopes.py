"""The scope matrix: every route of the app's route table, called with every kind of token.

The routes come from the app itself, so a route added without a scope declaration (or on a
router that is not made of ScopedRoute) fails here. How a route declares its scope:
services/api/auth.py and docs/contracts.md (Authentication and scopes).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from services.api.app import create_app
from services.api.auth import Rule, declared_rules
from services.api.authenticate import ScopedRoute
from services.common.settings import Settings
from tests.integration.api_harness import (
    ADMIN,
    GATEWAY,
    READ,
    api_client,
    bearer,
    create_key,
    create_projection,
    new_account,
    with_tokens,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

# The scopes docs/contracts.md gives the routes it names. A route missing here only has to
# declare a scope; one listed here must declare this one.
CONTRACT = {
    ("GET", "/v1/accounts/{account_id}/balance"): "read",
    ("GET", "/v1/accounts/{account_id}/entries"): "read",
    ("GET", "/v1/accounts/{account_id}/usage"): "read",
    ("POST", "/v1/accounts/{account_id}/credits"): "admin",
    ("POST", "/v1/accounts/{account_id}/adjustments"): "admin",
    ("POST", "/v1/accounts/{account_id}/holds"): "gateway",
    ("DELETE", "/v1/accounts/{account_id}/holds/{hold_id}"): "gateway",
    ("GET", "/v1/accounts/{account_id}/holds"): "read",
    ("POST", "/v1/holds"): "gateway",
    ("POST", "/v1/usage"): "gateway",
    ("POST", "/v1/quote"): "read",
    ("GET", "/v1/pricebook"): "read",
    ("POST", "/v1/keys"): "admin",
    ("GET", "/v1/keys"): "admin",
    ("DELETE", "/v1/keys/{key_id}"): "admin",
    ("PUT", "/v1/accounts/{account_id}/alerts"): "admin",
    ("GET", "/v1/accounts/{account_id}/alerts"): "read",
    ("GET", "/v1/webhooks/deliveries"): "admin",
    ("GET", "/dashboard"): "public",
    ("GET", "/dashboard/assets/{name}"): "public",
    ("GET", "/v1/admin/overview"): "admin",
    ("GET", "/healthz"): "public",
    ("GET", "/readyz"): "public",
    ("GET", "/metrics"): "public",
}
# The only routes about no account that account keys may use.
OPEN_TO_ACCOUNT_KEYS = {("POST", "/v1/quote"), ("GET", "/v1/pricebook")}
# Which token scopes pass a route that needs read, gateway or admin.
PASSES = {
    "read": {"read", "gateway", "admin"},
    "gateway": {"gateway", "admin"},
    "admin": {"admin"},
}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    rules: tuple[Rule, ...]

    @property
    def scope(self) -> str:
        return "admin" if any(r.scope == "admin" for r in self.rules) else self.rules[0].scope


def api_routes(routes: list[BaseRoute]) -> Iterator[BaseRoute]:
    """Every route, with included routers opened (newer FastAPI keeps them as routers)."""
    for route in routes:
        router = getattr(route, "original_router", None)
        yield from api_routes(router.routes) if router is not None else [route]


def endpoints(app: FastAPI) -> list[Endpoint]:
    docs = {app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url}
    found = []
    for route in api_routes(app.routes):
        if not isinstance(route, APIRoute):
            path = getattr(route, "path", repr(route))
            assert path in docs, f"{path}: serve it from a ScopedRoute with require('public')"
            continue
        assert isinstance(route, ScopedRoute), f"{route.path}: APIRouter(route_class=ScopedRoute)"
        rules = declared_rules(route)
        assert rules, f"{route.path} declares no scope: dependencies=[Depends(require(...))]"
        found += [Endpoint(method, route.path, rules) for method in sorted(route.methods)]
    return found


def test_every_route_declares_the_scope_the_contract_gives_it() -> None:
    found = endpoints(create_app(Settings(ledger_api_tokens="t:read")))
    assert len(found) >= 10
    for endpoint in found:
        key = (endpoint.method, endpoint.path)
        assert CONTRACT.get(key, endpoint.scope) == endpoint.scope, key
        opened = any(rule.account_keys for rule in endpoint.rules)
        assert opened == (key in OPEN_TO_ACCOUNT_KEYS), key


def may_pass(caller: str, endpoint: Endpoint, own_account: bool) -> bool:
    """The rule of docs/contracts.md, written out again independently of services/api."""
    if endpoint.scope == "public":
        return True
    if caller == "account":
        if (endpoint.method, endpoint.path) in OPEN_TO_ACCOUNT_KEYS:
            return True
        about_account = "{account_id}" in endpoint.path
        return (
            endpoint.method == "GET" and endpoint.scope == "read" and about_account and own_account
        )
    return caller in PASSES[endpoint.scope]


@dataclass(frozen=True)
class Caller:
    label: str
    scope: str | None  # None: no usable token at all
    headers: dict[str, str]
    own_account: bool = False


@pytest.fixture(scope="module")
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    await create_projection(settings.database_url)
    async with api_client(with_tokens(settings)) as client:
        yield client


async def callers(client: httpx.AsyncClient, account: str) -> list[Caller]:
    made = {s: await create_key(client, s) for s in ("read", "gateway", "admin")}
    own = await create_key(client, "account", account)
    revoked = await create_key(client, "admin")
    assert (await client.delete(f"/v1/keys/{revoked['key_id']}", headers=ADMIN)).status_code == 200
    return [
        Caller("no token", None, {}),
        Caller("unknown token", None, bearer("lk_" + "x" * 43)),
        Caller("revoked key", None, bearer(revoked["secret"])),
        Caller("read token", "read", READ),
        Caller("gateway token", "gateway", GATEWAY),
        Caller("admin token", "admin", ADMIN),
        *(Caller(f"{s} key", s, bearer(k["secret"])) for s, k in made.items()),
        Caller("account key, own account", "account", bearer(own["secret"]), own_account=True),
        Caller("account key, other account", "account", bearer(own["secret"])),
    ]


def concrete(path: str, account: str) -> str:
    with_account = path.replace("{account_id}", account)
    return re.sub(r"\{[^}]+\}", str(uuid.uuid4()), with_account)


async def test_scope_matrix(client: httpx.AsyncClient, settings: Settings) -> None:
    own = new_account("own")
    everyone = await callers(client, own)
    wrong: list[str] = []
    for endpoint in endpoints(create_app(with_tokens(settings))):
        for caller in everyone:
            account = own if caller.own_account else new_account("other")
            path = concrete(endpoint.path, account)
            headers = caller.headers | {"Idempotency-Key": uuid.uuid4().hex}
            body = {} if endpoint.method in ("POST", "PUT", "PATCH") else None
            answer = await client.request(endpoint.method, path, headers=headers, json=body)
            if caller.scope is None:
                expected = "passes" if endpoint.scope == "public" else 401
            else:
                expected = "passes" if may_pass(caller.scope, endpoint, caller.own_account) else 403
            got = "passes" if answer.status_code not in (401, 403) else answer.status_code
            if got != expected:
                wrong.append(f"{endpoint.method} {endpoint.path} by {caller.label}: {answer.text}")
            if isinstance(got, int):
                assert answer.json()["error"] == {401: "unauthorized", 403: "forbidden"}[got]
    assert wrong == []
