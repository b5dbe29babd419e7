"""The hot paths (services/api/hot_paths.py) answer byte for byte what the routes answer.

Two apps on one database: `hot` as served, `routes` with the hot paths off. Each request
is sent to both; where an answer depends on what the first changed (a placement), the
other app answers its replay, which the contract makes equal but for the status.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest

from services.api.app import create_app
from services.common.settings import Settings
from tests.integration.api_harness import (
    ADMIN,
    GATEWAY,
    READ,
    TOKENS,
    create_key,
    create_projection,
    insert_balance,
    new_account,
    with_tokens,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
J = {"Content-Type": "application/json"}
Clients = tuple[httpx.AsyncClient, httpx.AsyncClient]


@asynccontextmanager
async def app_client(settings: Settings, hot_paths: bool) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, hot_paths=hot_paths)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


@pytest.fixture(scope="module")
async def clients(settings: Settings) -> AsyncIterator[Clients]:
    await create_projection(settings.database_url)
    configured = with_tokens(settings, TOKENS)
    async with app_client(configured, True) as hot, app_client(configured, False) as routes:
        yield hot, routes


@pytest.fixture(scope="module")
async def db(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(settings.database_url)
    yield conn
    await conn.close()


def seen(answer: httpx.Response) -> tuple[int, str | None, bytes]:
    return answer.status_code, answer.headers.get("content-type"), answer.content


async def both(clients: Clients, method: str, path: str, **kwargs: Any) -> None:
    hot, routes = clients
    first = await hot.request(method, path, **kwargs)
    second = await routes.request(method, path, **kwargs)
    assert seen(first) == seen(second), (first.text, second.text)
    assert first.headers.get("www-authenticate") == second.headers.get("www-authenticate")


def with_key(headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "Idempotency-Key": uuid.uuid4().hex}


async def test_balance_reads_answer_alike(clients: Clients, db: asyncpg.Connection) -> None:
    account = new_account("hot-balance")
    await insert_balance(db, account, purchased=1000, spent=10, entries=2)
    own = await create_key(clients[0], "account", account_id=account)
    path = f"/v1/accounts/{account}/balance"
    for headers in (READ, GATEWAY, ADMIN, {"Authorization": f"Bearer {own['secret']}"}):
        await both(clients, "GET", path, headers=headers)
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic x"}):
        await both(clients, "GET", path, headers=headers)
    other = await create_key(clients[0], "account", account_id=new_account("hot-other"))
    await both(clients, "GET", path, headers={"Authorization": f"Bearer {other['secret']}"})
    await both(clients, "GET", f"/v1/accounts/{new_account('none')}/balance", headers=READ)
    await both(clients, "GET", "/v1/accounts/bad%20id/balance", headers=READ)
    await both(clients, "GET", f"{path}/", headers=READ)


async def test_refused_and_hostile_holds_answer_alike(
    clients: Clients, db: asyncpg.Connection
) -> None:
    empty = new_account("hot-empty")
    await insert_balance(db, empty, purchased=0, spent=0, entries=0)
    path = f"/v1/accounts/{empty}/holds"
    await both(clients, "POST", path, json={"credits": 5}, headers=with_key(GATEWAY))
    for content in (b"{", b"[]", b'{"credits": "5"}', b'{"credits": -1}', b'{"credits": 1.0}',
                    b'{"credits": 5, "x": 1}', b'{"credits": 99999999999999999999999}',
                    b'{"credits": NaN}', b'{"model": "m", "input_tokens": 1}', b""):  # fmt: skip
        await both(clients, "POST", path, content=content, headers={**with_key(GATEWAY), **J})
    body = {"credits": 5}
    await both(clients, "POST", path, json=body, headers=GATEWAY)  # no Idempotency-Key
    for key in ("", "k ", " k", "k\t", "a\x7fb", "k" * 256):
        await both(clients, "POST", path, json=body, headers={**GATEWAY, "Idempotency-Key": key})
    await both(clients, "POST", path, json=body, headers=with_key(READ))
    await both(clients, "POST", path, json=body, headers=with_key({}))
    text = {**with_key(GATEWAY), "Content-Type": "text/plain"}
    await both(clients, "POST", path, content=b'{"credits": 5}', headers=text)
    await both(clients, "POST", "/v1/accounts/a%2Fb/holds", json=body, headers=with_key(GATEWAY))


async def test_placements_answer_alike_on_replay(clients: Clients, db: asyncpg.Connection) -> None:
    account = new_account("hot-place")
    await insert_balance(db, account, purchased=1000, spent=0, entries=1)
    path = f"/v1/accounts/{account}/holds"
    for first, second in (clients, clients[::-1]):
        headers = with_key(GATEWAY)
        placed = await first.post(path, json={"credits": 7}, headers=headers)
        again = await second.post(path, json={"credits": 7}, headers=headers)
        assert (placed.status_code, again.status_code) == (201, 200)
        assert placed.content == again.content
        free = with_key(GATEWAY)
        placed = await first.post(path, json={"credits": 0}, headers=free)
        again = await second.post(path, json={"credits": 0}, headers=free)
        assert (placed.status_code, again.status_code) == (201, 200)
        assert placed.content == again.content
        assert placed.headers["content-type"] == again.headers["content-type"]
        conflict = {"credits": 8}
        await both(clients, "POST", path, json=conflict, headers=headers)


async def test_batches_answer_alike(clients: Clients, db: asyncpg.Connection) -> None:
    empty = new_account("hot-batch")
    await insert_balance(db, empty, purchased=0, spent=0, entries=0)
    items: list[dict[str, Any]] = [
        {"account_id": empty, "idempotency_key": uuid.uuid4().hex, "credits": 3},
        {"account_id": empty, "idempotency_key": "k", "credits": "3"},
        {"account_id": "bad id", "idempotency_key": "k", "credits": 3},
        {"account_id": empty, "idempotency_key": "k2", "model": "nope", "input_tokens": 1,
         "max_output_tokens": 1},
        {"account_id": empty, "idempotency_key": "k3 ", "credits": 0},
        7,
    ]  # fmt: skip
    await both(clients, "POST", "/v1/holds", json={"holds": items}, headers=GATEWAY)
    for content in (b"{}", b'{"holds": []}', b'{"holds": [1]}', b"[", b'{"holds": {}}'):
        await both(clients, "POST", "/v1/holds", content=content, headers={**GATEWAY, **J})
    await both(clients, "POST", "/v1/holds", json={"holds": items}, headers=READ)
    funded = new_account("hot-batch-funded")
    await insert_balance(db, funded, purchased=100, spent=0, entries=1)
    placed = [{"account_id": funded, "idempotency_key": uuid.uuid4().hex, "credits": 1}]
    first = await clients[0].post("/v1/holds", json={"holds": placed}, headers=GATEWAY)
    again = await clients[1].post("/v1/holds", json={"holds": placed}, headers=GATEWAY)
    assert first.json()["results"][0]["code"] == 201
    assert again.json()["results"][0]["code"] == 200
    assert first.json()["results"][0]["body"] == again.json()["results"][0]["body"]


async def test_hot_answers_are_counted_by_route(clients: Clients, db: asyncpg.Connection) -> None:
    account = new_account("hot-metrics")
    await insert_balance(db, account, purchased=10, spent=0, entries=1)
    assert (await clients[0].get(f"/v1/accounts/{account}/balance", headers=READ)).is_success
    metrics = (await clients[0].get("/metrics")).text
    assert (
        'ledger_api_requests_total{method="GET",route="/v1/accounts/{account_id}/balance",'
        'status="200"}'
    ) in metrics
