"""The requests gateways send most (a hold, a batch of holds, a balance read), answered
on their plain path without FastAPI's machinery around the route.

Measured with `api --workers 1`, FastAPI's dependency solving, body parsing and response
validation took most of a request's CPU (a single hold: about 0.66 ms in the API against
0.25 ms in PostgreSQL), and on a 2-core machine that CPU is the request rate. `HotPaths`
sits just inside the app's middlewares (the body limit and the metrics still see every
request) and takes only a request it can answer exactly as the route would: the route's
own scope rules (read from its declaration, services/api/auth.py) admit the token, the
body is a JSON object the route's model accepts, and the route's own code decides
(routes/holds.py place_one and place_batch, routes/accounts.py balance_of). Anything else
(another path, a refused token, a missing header, a body that does not parse or validate,
a chunked body) goes to the app unchanged, with the body read so far put back, so every
refusal is the one the route itself answers. The routes, their OpenAPI schema and the scope
matrix stay where they are.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api.auth import Rule, admit, declared_rules
from services.api.errors import ApiError, error_response
from services.api.holds.requests import BatchRequest, HoldRequest
from services.api.idempotency import check_key
from services.api.resources import Resources
from services.api.routes import accounts, holds

# A subset of what the routes accept (schemas.events.ACCOUNT_ID_PATTERN in one segment);
# any other account id goes to the route, which answers it.
ACCOUNT_PATH = re.compile(r"/v1/accounts/([A-Za-z0-9._:@-]{1,128})/(holds|balance)")
BATCH_PATH = "/v1/holds"
HOLDS_PATH = "/v1/accounts/{account_id}/holds"
BALANCE_PATH = "/v1/accounts/{account_id}/balance"
JSON = b"application/json"

# What a hot request is answered with: a status and a JSON body.
Answered = tuple[int, bytes]
Decide = Callable[[Resources, "HotRequest"], Awaitable[Answered | None]]


class HotRequest:
    """A request taken by HotPaths: its headers, its account id and its body once read."""

    def __init__(self, scope: Scope, account_id: str | None) -> None:
        self.headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            self.headers.setdefault(name, value)
        self.account_id = account_id
        self.has_body = scope["method"] == "POST"
        self.body = b""

    def header(self, name: bytes) -> str | None:
        value = self.headers.get(name)
        return None if value is None else value.decode("latin-1")  # as Starlette reads it


def dumps(body: Any) -> bytes:
    """The body as JSONResponse renders it; orjson unless a value is beyond it."""
    try:
        return orjson.dumps(body)
    except TypeError:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def read_model(model: type[BaseModel], body: bytes) -> Any:
    """The validated body, or None when the route should answer it (its own 4xx)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(parsed, dict):
        return None
    try:
        return model.model_validate(parsed)
    except ValidationError:
        return None


async def place_one(opened: Resources, request: HotRequest) -> Answered | None:
    assert request.account_id is not None
    body = read_model(HoldRequest, request.body)
    if body is None:
        return None
    try:
        key = check_key(request.header(b"idempotency-key"))
    except ApiError:
        return None
    answer = await holds.place_one(opened, request.account_id, key, body)
    return answer.code, dumps(answer.body)


async def place_batch(opened: Resources, request: HotRequest) -> Answered | None:
    body = read_model(BatchRequest, request.body)
    if body is None:
        return None
    return 200, dumps(await holds.place_batch(opened, body))


async def read_balance(opened: Resources, request: HotRequest) -> Answered | None:
    assert request.account_id is not None
    balance = await accounts.balance_of(opened, request.account_id)
    return 200, balance.model_dump_json().encode()


class HotPaths:
    """ASGI middleware; `api` is the app whose routes it answers for."""

    def __init__(self, app: ASGIApp, api: FastAPI) -> None:
        self.app = app
        routes = {
            (method, route.path): route
            for route in api_routes(api.routes)
            for method in route.methods or ()
        }
        self.hot: dict[tuple[str, str], tuple[APIRoute, tuple[Rule, ...], Decide]] = {}
        for key, decide in (
            (("POST", HOLDS_PATH), place_one),
            (("POST", BATCH_PATH), place_batch),
            (("GET", BALANCE_PATH), read_balance),
        ):
            route = routes[key]
            self.hot[key] = (route, declared_rules(route) or (Rule("admin"),), decide)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = self._match(scope)
        if found is None:
            await self.app(scope, receive, send)
            return
        template, account_id = found
        route, rules, decide = self.hot[(scope["method"], template)]
        scope["route"] = route  # the metrics label it by its template
        if account_id is not None:
            scope["path_params"] = {"account_id": account_id}
        request = HotRequest(scope, account_id)
        received: list[Message] = []
        answered = None
        if await self._admitted(scope, rules) and await self._read(request, receive, received):
            try:
                answered = await decide(scope["app"].state.resources, request)
            except ApiError as exc:
                response = error_response(exc.status_code, exc.code, str(exc.detail), exc.headers)
                await response(scope, receive, send)
                return
        if answered is None:
            await self.app(scope, replaying(received, receive), send)
            return
        await respond(send, *answered)

    def _match(self, scope: Scope) -> tuple[str, str | None] | None:
        if scope["type"] != "http" or scope.get("root_path"):
            return None
        path, method = scope["path"], scope["method"]
        if path == BATCH_PATH:
            return (BATCH_PATH, None) if method == "POST" else None
        matched = ACCOUNT_PATH.fullmatch(path)
        if matched is None:
            return None
        account_id, leaf = matched.groups()
        if (leaf, method) == ("holds", "POST"):
            return HOLDS_PATH, account_id
        if (leaf, method) == ("balance", "GET"):
            return BALANCE_PATH, account_id
        return None

    async def _admitted(self, scope: Scope, rules: tuple[Rule, ...]) -> bool:
        """The route's own check (ScopedRoute's); a refusal is left to the route to answer."""
        try:
            await admit(Request(scope), rules)
        except ApiError:
            return False
        return True

    async def _read(self, request: HotRequest, receive: Receive, received: list[Message]) -> bool:
        """Reads a JSON body of declared length into `request.body`; False when the route
        should read it (no body expected, chunked, another media type, a disconnect)."""
        if not request.has_body:
            return True
        if request.headers.get(b"content-type") != JSON:
            return False
        if b"content-length" not in request.headers:
            return False
        chunks = []
        while True:
            message = await receive()
            received.append(message)
            if message["type"] != "http.request":
                return False
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        request.body = b"".join(chunks)
        return True


def api_routes(routes: Sequence[BaseRoute]) -> Iterator[APIRoute]:
    """Every APIRoute, with included routers opened (newer FastAPI keeps them as routers)."""
    for route in routes:
        router = getattr(route, "original_router", None)
        if router is not None:
            yield from api_routes(router.routes)
        elif isinstance(route, APIRoute):
            yield route


def replaying(messages: list[Message], receive: Receive) -> Receive:
    """`receive` with the messages read already given again first."""
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay


async def respond(send: Send, status: int, body: bytes) -> None:
    """What JSONResponse sends: the same two headers in the same order."""
    headers = [(b"content-length", str(len(body)).encode()), (b"content-type", JSON)]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
