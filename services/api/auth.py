"""Who may call which route: scopes, the principal behind a token, and each route's rule.

How a route states its scope (the one place; docs/contracts.md, Authentication and scopes):

    router = APIRouter(prefix="/v1/things", route_class=ScopedRoute)

    @router.get("/{account_id}/thing", dependencies=[Depends(require("read"))])

`require(scope)` takes `"public"` (no token), `"read"`, `"gateway"` or `"admin"`; pass
`account_keys=True` to open a route about no account (a quote, the price book) to every
`account` key. A GET route that needs `read` and has an `{account_id}` path parameter is
open to the `account` keys of that very account; nothing else is. `ScopedRoute`
(services/api/authenticate.py) checks the declaration before FastAPI reads the body, so a
bad token is a 401 even with a malformed body; a route without a declaration is refused to
all but admin. tests/integration/test_api_scopes.py walks the app's route table and fails
for a route that declares no scope or is not a ScopedRoute.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated, Literal, Protocol

from fastapi import Depends, Request
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.api.errors import ApiError
from services.common.settings import Settings

Scope = Literal["read", "gateway", "admin", "account"]
RouteScope = Literal["public", "read", "gateway", "admin"]
# Scopes a bootstrap token may have; `account` keys need an account_id, so only API keys.
TOKEN_SCOPES: dict[str, Scope] = {"read": "read", "gateway": "gateway", "admin": "admin"}
# Which token scopes may use a route that needs the key's scope.
GRANTS: dict[RouteScope, frozenset[Scope]] = {
    "public": frozenset({"read", "gateway", "admin", "account"}),
    "read": frozenset({"read", "gateway", "admin"}),
    "gateway": frozenset({"gateway", "admin"}),
    "admin": frozenset({"admin"}),
}
CHALLENGE = {"WWW-Authenticate": "Bearer"}


class AuthConfigError(ValueError):
    """LEDGER_API_TOKENS / LEDGER_API_AUTH cannot be used; the service must not start."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for: a bootstrap token (key_id None) or an API key."""

    scope: Scope
    account_id: str | None = None
    key_id: str | None = None


ANONYMOUS = Principal("admin")  # every request, when LEDGER_API_AUTH=disabled


@dataclass(frozen=True, slots=True)
class Rule:
    """A route's declared scope."""

    scope: RouteScope
    account_keys: bool = False  # open to every account key (the route is about no account)


def permits(principal: Principal, rule: Rule, method: str, account_id: str | None) -> bool:
    """Whether `principal` may call a route with `rule`; `account_id` is the path's, if any."""
    if principal.scope != "account":
        return principal.scope in GRANTS[rule.scope]
    if rule.scope == "public" or rule.account_keys:
        return True
    own = account_id is not None and account_id == principal.account_id
    return rule.scope == "read" and method == "GET" and own


@dataclass(frozen=True)
class Tokens:
    """The configured tokens; `enabled=False` only when LEDGER_API_AUTH=disabled."""

    enabled: bool
    pairs: tuple[tuple[bytes, Scope], ...]

    def scope_of(self, token: str) -> Scope | None:
        presented = token.encode()
        found: Scope | None = None
        # Every configured token is compared, so the time taken does not reveal which
        # (or whether one) matched.
        for known, scope in self.pairs:
            if hmac.compare_digest(presented, known) and found is None:
                found = scope
        return found


def parse_tokens(settings: Settings) -> Tokens:
    mode = settings.ledger_api_auth.strip().lower()
    if mode not in ("enabled", "disabled"):
        raise AuthConfigError(f"LEDGER_API_AUTH must be 'enabled' or 'disabled', not {mode!r}")
    pairs = []
    for item in filter(None, (p.strip() for p in settings.ledger_api_tokens.split(","))):
        token, sep, name = item.rpartition(":")
        scope = TOKEN_SCOPES.get(name)
        if not sep or not token or scope is None:
            raise AuthConfigError(
                "LEDGER_API_TOKENS entries must look like 'token:read', 'token:gateway' "
                "or 'token:admin'"
            )
        pairs.append((token.encode(), scope))
    if mode == "enabled" and not pairs:
        raise AuthConfigError(
            "no API tokens: set LEDGER_API_TOKENS='token:scope,...' (scope read, gateway or "
            "admin), or LEDGER_API_AUTH=disabled to run without authentication"
        )
    return Tokens(enabled=mode == "enabled", pairs=tuple(pairs))


def unauthorized(detail: str) -> ApiError:
    return ApiError(401, "unauthorized", detail, CHALLENGE)


def forbidden(rule: Rule, principal: Principal) -> ApiError:
    if principal.scope == "account":
        return ApiError(403, "forbidden", "this key may read only its own account")
    return ApiError(403, "forbidden", f"this route needs the {rule.scope!r} scope")


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, as HTTPBearer reads it."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


# auto_error=False: a missing or malformed header is answered in the API's own error format;
# the scheme is declared so /docs offers an "Authorize" button.
bearer = HTTPBearer(auto_error=False, description="a token from LEDGER_API_TOKENS or an API key")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


class KeyLookup(Protocol):
    """What resolves an API key's secret (services/api/keys/ring.py)."""

    async def principal(self, secret: str) -> Principal | None: ...


async def principal_of(request: Request, token: str) -> Principal | None:
    tokens: Tokens = request.app.state.tokens
    if (bootstrap := tokens.scope_of(token)) is not None:
        return Principal(bootstrap)
    keys: KeyLookup = request.app.state.resources.keys
    return await keys.principal(token)


async def admit(request: Request, rules: tuple[Rule, ...]) -> Principal | None:
    """The principal `request` acts for (kept in its state), or the 401/403 raised."""
    tokens: Tokens = request.app.state.tokens
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None and not tokens.enabled:
        principal = ANONYMOUS
    if principal is None:
        if all(rule.scope == "public" for rule in rules):
            return None
        token = bearer_token(request.headers.get("authorization"))
        if token is None:
            raise unauthorized("expected 'Authorization: Bearer <token>'")
        if (principal := await principal_of(request, token)) is None:
            raise unauthorized("unknown or revoked token")
    request.state.principal = principal
    for rule in rules:
        if not permits(principal, rule, request.method, request.path_params.get("account_id")):
            raise forbidden(rule, principal)
    return principal


class Declared:
    """A route's scope declaration; `declared_rules` finds it among the dependencies."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule


class Require(Declared):
    """The dependency of a route that needs a token. It declares the bearer scheme in
    OpenAPI and checks the rule, with no second lookup when ScopedRoute already resolved
    the principal (and with one when the route is a plain APIRoute)."""

    async def __call__(self, request: Request, credentials: Credentials) -> None:
        await admit(request, (self.rule,))


class Public(Declared):
    """The dependency of a route that needs no token (probes, pages)."""

    async def __call__(self) -> None:
        return None


def require(scope: RouteScope, *, account_keys: bool = False) -> Require | Public:
    """The scope a route needs; use as `dependencies=[Depends(require("read"))]`."""
    rule = Rule(scope, account_keys)
    return Public(rule) if scope == "public" else Require(rule)


def declared_rules(route: APIRoute) -> tuple[Rule, ...] | None:
    """The rules a route declares (all must pass), or None when it declares none."""
    rules: list[Rule] = []
    for depends in route.dependencies:
        if isinstance(declared := depends.dependency, Declared):
            rules.append(declared.rule)
    return tuple(rules) or None
