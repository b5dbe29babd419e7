"""Bearer tokens with a scope each, from LEDGER_API_TOKENS (`token:scope,token:scope`)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.api.errors import ApiError
from services.common.settings import Settings

Scope = Literal["read", "gateway", "admin", "account"]
SCOPES: dict[str, Scope] = {"read": "read", "gateway": "gateway", "admin": "admin"}
# Which token scopes may use a route that needs the key's scope.
GRANTS: dict[Scope, frozenset[Scope]] = {
    "read": frozenset({"read", "gateway", "admin"}),
    "gateway": frozenset({"gateway", "admin"}),
    "admin": frozenset({"admin"}),
}
CHALLENGE = {"WWW-Authenticate": "Bearer"}


class AuthConfigError(ValueError):
    """LEDGER_API_TOKENS / LEDGER_API_AUTH cannot be used; the service must not start."""


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
        scope = SCOPES.get(name)
        if not sep or not token or scope is None:
            raise AuthConfigError(
                "LEDGER_API_TOKENS entries must look like 'token:read' or 'token:admin'"
            )
        pairs.append((token.encode(), scope))
    if mode == "enabled" and not pairs:
        raise AuthConfigError(
            "no API tokens: set LEDGER_API_TOKENS='token:scope,...' (read, gateway or admin), "
            "or LEDGER_API_AUTH=disabled to run without authentication"
        )
    return Tokens(enabled=mode == "enabled", pairs=tuple(pairs))


# auto_error=False: a missing or malformed header is answered in the API's own error format;
# the scheme is declared so /docs offers an "Authorize" button.
bearer = HTTPBearer(auto_error=False, description="a token from LEDGER_API_TOKENS")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def refusal(tokens: Tokens, token: str | None, needed: Scope) -> ApiError | None:
    """The 401 or 403 for `token` on a route that needs `needed`; None when it may pass."""
    if not tokens.enabled:
        return None
    if token is None:
        return ApiError(401, "unauthorized", "expected 'Authorization: Bearer <token>'", CHALLENGE)
    scope = tokens.scope_of(token)
    if scope is None:
        return ApiError(401, "unauthorized", "unknown token", CHALLENGE)
    if scope not in GRANTS[needed]:
        return ApiError(403, "forbidden", f"this route needs the {needed!r} scope")
    return None


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, as HTTPBearer reads it."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class Require:
    """A route dependency: 401 without a known token, 403 when its scope is not enough.

    The `Authenticate` middleware (services/api/authenticate.py) applies the same rule
    before the body is parsed; this check stays as the route's own declaration (OpenAPI
    security) and as a second line behind the middleware.
    """

    def __init__(self, needed: Scope) -> None:
        self.needed = needed

    async def __call__(self, request: Request, credentials: Credentials) -> None:
        token = credentials.credentials if credentials is not None else None
        if (error := refusal(request.app.state.tokens, token, self.needed)) is not None:
            raise error


def require(needed: Scope) -> Require:
    return Require(needed)
