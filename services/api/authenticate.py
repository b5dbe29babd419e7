"""Authentication before anything reads the request body.

FastAPI parses a JSON body before it runs a route's dependencies, so a request with no
token and a malformed body got 422 instead of 401. This middleware answers 401 or 403
before routing, from the rule DESIGN.md states for the whole API: every route under /v1
needs a token, `read` or `admin`, and POST .../credits needs `admin`; /healthz, /readyz,
/metrics and the OpenAPI pages need none. The routes keep their `Require` dependency as
their declaration in OpenAPI and as a second check behind this one.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from services.api.auth import Scope as TokenScope
from services.api.auth import Tokens, bearer_token, refusal
from services.api.errors import error_response

PROTECTED_PREFIX = "/v1/"


def scope_needed(method: str, path: str) -> TokenScope | None:
    if not path.startswith(PROTECTED_PREFIX):
        return None
    if method == "POST" and path.rstrip("/").endswith("/credits"):
        return "admin"
    if method == "POST" and path.rstrip("/") == "/v1/usage":
        return "gateway"
    return "read"


class Authenticate:
    def __init__(self, app: ASGIApp, tokens: Tokens) -> None:
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.tokens.enabled:
            needed = scope_needed(scope["method"], scope["path"])
            if needed is not None:
                error = refusal(self.tokens, bearer_token(_authorization(scope)), needed)
                if error is not None:
                    detail = str(error.detail)
                    response = error_response(error.status_code, error.code, detail, error.headers)
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def _authorization(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            text: str = value.decode("latin-1")
            return text
    return None
