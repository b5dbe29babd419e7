"""Authentication before anything reads the request body.

FastAPI reads and parses a JSON body before it runs a route's dependencies, so a request
with no token and a malformed body would get 422 instead of 401, and a read token posting
junk to an admin route 422 instead of 403. A `ScopedRoute` checks the scope its route
declares (`require(...)` in its dependencies, services/api/auth.py) first, then lets
FastAPI read the body. The principal it resolved stays in the request state, where the
route's `Require` dependency finds it without a second lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from services.api.auth import Rule, admit, declared_rules

# A route without a declaration is refused to everyone but admin: failing closed, not open.
UNDECLARED = (Rule("admin"),)


class ScopedRoute(APIRoute):
    """The route class of every API router: `APIRouter(..., route_class=ScopedRoute)`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        rules = declared_rules(self) or UNDECLARED

        async def checked(request: Request) -> Response:
            await admit(request, rules)
            return await handler(request)

        return checked
