"""The hold routes on a real PostgreSQL and Kafka, the app called in-process."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from schemas.events import parse_hold_event
from services.common.settings import Settings
from services.common.topics import Topics
from tests.e2e.faults import read_topic
from tests.integration.api_harness import (
    GATEWAY,
    READ,
    TOKENS,
    api_client,
    create_projection,
    insert_balance,
    new_account,
    with_tokens,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    await create_projection(settings.database_url)
    async with api_client(with_tokens(settings, TOKENS)) as client:
        yield client


@pytest.fixture(scope="module")
async def db(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(settings.database_url)
    yield conn
    await conn.close()


async def funded(db: asyncpg.Connection, label: str, credits: int) -> str:
    account = new_account(label)
    await insert_balance(db, account, purchased=credits, spent=0, entries=1)
    return account


async def hold(
    client: httpx.AsyncClient, account: str, body: dict[str, Any], key: str | None = None
) -> httpx.Response:
    headers = {**GATEWAY, "Idempotency-Key": uuid.uuid4().hex if key is None else key}
    return await client.post(f"/v1/accounts/{account}/holds", json=body, headers=headers)


async def balance(client: httpx.AsyncClient, account: str) -> dict[str, Any]:
    answer = await client.get(f"/v1/accounts/{account}/balance", headers=READ)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_a_hold_is_placed_then_answered_again_by_its_key(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    account = await funded(db, "place", 1000)
    first = await hold(client, account, {"credits": 300}, key="req-1")
    assert first.status_code == 201, first.text
    placed = first.json()
    assert placed["account_id"] == account and placed["credits"] == 300
    assert placed["available"] == 700 and placed["status"] == "active"
    again = await hold(client, account, {"credits": 300, "ttl_seconds": 600}, key="req-1")
    assert again.status_code == 200
    assert again.json()["hold_id"] == placed["hold_id"] and again.json()["status"] == "active"
    other = await hold(client, account, {"credits": 301}, key="req-1")
    assert other.status_code == 409 and other.json()["error"] == "idempotency_conflict"
    shown = await balance(client, account)
    assert (shown["balance"], shown["held"], shown["available"]) == (1000, 300, 700)


async def test_not_enough_is_402_with_available_and_requested(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    account = await funded(db, "refuse", 100)
    assert (await hold(client, account, {"credits": 60})).status_code == 201
    refused = await hold(client, account, {"credits": 41}, key="req-big")
    assert refused.status_code == 402
    assert refused.json() | {"detail": ""} == {
        "error": "insufficient_credits",
        "detail": "",
        "available": 40,
        "requested": 41,
    }
    # A refusal claims no key: the same request succeeds once the credits are there.
    await db.execute("UPDATE ledger.balances SET balance = 200 WHERE account_id = $1", account)
    assert (await hold(client, account, {"credits": 41}, key="req-big")).status_code == 201


async def test_a_priced_hold_costs_the_quote_of_its_worst_case(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    account = await funded(db, "priced", 10_000)
    request = {"model": "mimo-v2-pro", "input_tokens": 1000, "max_output_tokens": 500}
    quote = await client.post(
        "/v1/quote",
        json={"model": "mimo-v2-pro", "input_tokens": 1000, "output_tokens": 500},
        headers=READ,
    )
    placed = await hold(client, account, request)
    assert placed.status_code == 201, placed.text
    assert placed.json()["credits"] == quote.json()["credits"] == 3000
    unknown = await hold(client, account, {**request, "model": "gpt-0"})
    assert unknown.status_code == 422 and unknown.json()["error"] == "unknown_model"


async def test_release_twice_unknown_and_settled(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    account = await funded(db, "release", 1000)
    hold_id = (await hold(client, account, {"credits": 400})).json()["hold_id"]
    url = f"/v1/accounts/{account}/holds/{hold_id}"
    for _ in range(2):
        released = await client.delete(url, headers=GATEWAY)
        assert released.status_code == 200
        assert released.json() == {"hold_id": hold_id, "status": "released"}
    assert (await balance(client, account))["available"] == 1000
    missing = await client.delete(f"/v1/accounts/{account}/holds/nope", headers=GATEWAY)
    assert missing.status_code == 404 and missing.json()["error"] == "hold_not_found"
    settled_id = (await hold(client, account, {"credits": 100})).json()["hold_id"]
    await db.execute("UPDATE holds.holds SET status = 'settled' WHERE hold_id = $1", settled_id)
    settled = await client.delete(f"/v1/accounts/{account}/holds/{settled_id}", headers=GATEWAY)
    assert settled.status_code == 409 and settled.json()["error"] == "hold_settled"


async def test_a_hold_expires_at_its_ttl(client: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    account = await funded(db, "expiry", 100)
    placed = await hold(client, account, {"credits": 100, "ttl_seconds": 1})
    assert placed.status_code == 201
    assert (await balance(client, account))["available"] == 0
    await asyncio.sleep(1.2)
    assert (await balance(client, account))["held"] == 0
    listed = await client.get(f"/v1/accounts/{account}/holds?status=expired", headers=READ)
    assert [h["hold_id"] for h in listed.json()["holds"]] == [placed.json()["hold_id"]]
    # The next placement sweeps it and may take its credits.
    assert (await hold(client, account, {"credits": 100})).status_code == 201


async def test_list_filters_by_status_and_pages(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    account = await funded(db, "list", 1000)
    ids = [(await hold(client, account, {"credits": 10})).json()["hold_id"] for _ in range(5)]
    await client.delete(f"/v1/accounts/{account}/holds/{ids[0]}", headers=GATEWAY)
    seen: list[str] = []
    cursor: str | None = None
    while True:
        query = f"?status=active&limit=2{f'&cursor={cursor}' if cursor else ''}"
        page = (await client.get(f"/v1/accounts/{account}/holds{query}", headers=READ)).json()
        seen += [h["hold_id"] for h in page["holds"]]
        assert all(h["status"] == "active" and h["settled_credits"] is None for h in page["holds"])
        if (cursor := page["next_cursor"]) is None:
            break
    assert seen == ids[1:][::-1]
    released = await client.get(f"/v1/accounts/{account}/holds?status=released", headers=READ)
    assert [h["hold_id"] for h in released.json()["holds"]] == [ids[0]]


async def test_a_batch_answers_each_hold_in_order(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    a = await funded(db, "batch-a", 100)
    b = await funded(db, "batch-b", 50)
    items = [
        {"account_id": b, "idempotency_key": "1", "credits": 50},
        {"account_id": a, "idempotency_key": "1", "credits": 70},
        {"account_id": a, "idempotency_key": "2", "credits": 40},
        {"account_id": a, "idempotency_key": "1", "credits": 70},
        {"account_id": a, "idempotency_key": "1", "credits": 71},
        {"account_id": a, "idempotency_key": "3", "model": "nope", "input_tokens": 1,
         "max_output_tokens": 1},
        {"account_id": a, "idempotency_key": "4", "credits": "many"},
    ]  # fmt: skip
    answer = await client.post("/v1/holds", json={"holds": items}, headers=GATEWAY)
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["code"] for r in results] == [201, 201, 402, 200, 409, 422, 422]
    assert results[0]["body"]["account_id"] == b and results[1]["body"]["available"] == 30
    assert results[3]["body"]["hold_id"] == results[1]["body"]["hold_id"]
    assert results[2]["body"]["available"] == 30 and results[2]["body"]["requested"] == 40


async def test_read_scope_may_list_but_not_hold(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    account = await funded(db, "scope", 100)
    url = f"/v1/accounts/{account}/holds"
    headers = {**READ, "Idempotency-Key": "k"}
    assert (await client.post(url, json={"credits": 1}, headers=headers)).status_code == 403
    assert (await client.delete(f"{url}/x", headers=READ)).status_code == 403
    batch = {"holds": [{"account_id": account, "idempotency_key": "k", "credits": 1}]}
    assert (await client.post("/v1/holds", json=batch, headers=READ)).status_code == 403
    assert (await client.get(url, headers=READ)).status_code == 200
    assert (await client.get(url, headers=GATEWAY)).status_code == 200


async def test_every_decision_reaches_holds_v1(
    client: httpx.AsyncClient, db: asyncpg.Connection, settings: Settings
) -> None:
    account = await funded(db, "events", 100)
    placed = (await hold(client, account, {"credits": 100}, key="gw:1")).json()
    assert (await hold(client, account, {"credits": 5}, key="gw:2")).status_code == 402
    await client.delete(f"/v1/accounts/{account}/holds/{placed['hold_id']}", headers=GATEWAY)
    topic = Topics.from_settings(settings).holds
    for _ in range(100):
        events = [
            parse_hold_event(r.value)
            for r in await read_topic(settings, topic)
            if r.key == account.encode() and r.value is not None
        ]
        if len(events) >= 3:
            break
        await asyncio.sleep(0.1)
    assert [e.type for e in events] == ["hold.placed", "hold.refused", "hold.released"]
    assert events[0].hold_id == events[2].hold_id == placed["hold_id"]
    assert events[0].credits == 100 and events[0].idempotency_key == "gw:1"
    refused = events[1]
    assert refused.type == "hold.refused" and (refused.available, refused.credits) == (0, 5)
    pending = "SELECT count(*) FROM holds.outbox WHERE account_id = $1"
    assert await db.fetchval(pending, account) == 0


async def test_batches_and_single_holds_together_never_over_commit(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    account = await funded(db, "mixed", 100 * 7)

    async def batch(n: int) -> list[int]:
        items = [{"account_id": account, "idempotency_key": f"b{n}-{i}", "credits": 7}
                 for i in range(20)]  # fmt: skip
        answer = await client.post("/v1/holds", json={"holds": items}, headers=GATEWAY)
        return [r["code"] for r in answer.json()["results"]]

    async def single(n: int) -> list[int]:
        return [(await hold(client, account, {"credits": 7}, key=f"s{n}")).status_code]

    codes = [c for done in await asyncio.gather(
        *(batch(n) for n in range(5)), *(single(n) for n in range(40))
    ) for c in done]  # fmt: skip
    assert codes.count(201) == 100 and codes.count(402) == 40
    shown = await balance(client, account)
    assert (shown["held"], shown["available"]) == (700, 0)


async def test_a_batch_takes_the_credits_of_expired_holds(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    account = await funded(db, "batch-expiry", 50)
    assert (await hold(client, account, {"credits": 50, "ttl_seconds": 1})).status_code == 201
    await asyncio.sleep(1.2)
    items = [{"account_id": account, "idempotency_key": "late", "credits": 50}]
    answer = await client.post("/v1/holds", json={"holds": items}, headers=GATEWAY)
    assert [r["code"] for r in answer.json()["results"]] == [201]
    assert (await balance(client, account))["held"] == 50


async def test_a_free_model_holds_0_credits_alone_and_in_a_batch(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    account = await funded(db, "free", 100)
    free = {"model": "mimo-v2-tts", "input_tokens": 1000, "max_output_tokens": 1000}
    placed = await hold(client, account, free, key="tts-1")
    assert placed.status_code == 201, placed.text
    assert (placed.json()["credits"], placed.json()["available"]) == (0, 100)
    assert (await hold(client, account, {"credits": 0})).status_code == 201
    again = await hold(client, account, free, key="tts-1")
    assert (again.status_code, again.json()["status"]) == (200, "active")
    items = [
        {"account_id": account, "idempotency_key": "b-tts", **free},
        {"account_id": account, "idempotency_key": "b-zero", "credits": 0},
        {"account_id": account, "idempotency_key": "b-one", "credits": 1},
        {"account_id": account, "idempotency_key": "tts-1", **free},
    ]
    answer = await client.post("/v1/holds", json={"holds": items}, headers=GATEWAY)
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["code"] for r in results] == [201, 201, 201, 200]
    assert [r["body"]["credits"] for r in results] == [0, 0, 1, 0]
    assert results[3]["body"]["hold_id"] == placed.json()["hold_id"]
    shown = await balance(client, account)
    assert (shown["held"], shown["available"]) == (1, 99)
    listed = await client.get(f"/v1/accounts/{account}/holds?status=active", headers=READ)
    assert sorted(h["credits"] for h in listed.json()["holds"]) == [0, 0, 0, 0, 1]


async def test_0_credits_are_refused_only_when_available_is_below_0(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """Placed only when available >= credits: an account without credits may still hold 0
    (available 0); an overdrawn one may not."""
    empty = new_account("empty")
    assert (await hold(client, empty, {"credits": 0})).status_code == 201
    overdrawn = new_account("overdrawn")
    await insert_balance(db, overdrawn, purchased=10, spent=15, entries=2)
    refused = await hold(client, overdrawn, {"credits": 0}, key="free-call")
    assert refused.status_code == 402
    assert (refused.json()["available"], refused.json()["requested"]) == (-5, 0)
    items = [{"account_id": overdrawn, "idempotency_key": "free-call", "credits": 0}]
    answer = await client.post("/v1/holds", json={"holds": items}, headers=GATEWAY)
    [result] = answer.json()["results"]
    assert (result["code"], result["body"]["error"]) == (402, "insufficient_credits")


async def test_the_key_of_a_finished_hold_answers_200_with_its_status(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """A gateway admits only on 201 or on 200 with status active: a repeated key of a
    settled, released or expired hold answers its status, alone and in a batch."""
    account = await funded(db, "finished", 1000)
    body = {"credits": 10, "ttl_seconds": 1}
    ids = {}
    for name in ("settled", "released", "expired", "free-settled"):
        fields = {"credits": 0, "ttl_seconds": 1} if name == "free-settled" else body
        ids[name] = (await hold(client, account, fields, key=name)).json()["hold_id"]
    settle = "UPDATE holds.holds SET status = 'settled', settled_credits = 0 WHERE hold_id = $1"
    await db.execute(settle, ids["settled"])
    await db.execute(settle, ids["free-settled"])
    url = f"/v1/accounts/{account}/holds/{ids['released']}"
    assert (await client.delete(url, headers=GATEWAY)).status_code == 200
    await asyncio.sleep(1.2)  # "expired" passes its expires_at
    for name, hold_id in ids.items():
        fields = {"credits": 0, "ttl_seconds": 1} if name == "free-settled" else body
        again = await hold(client, account, fields, key=name)
        assert again.status_code == 200, again.text
        assert (again.json()["hold_id"], again.json()["status"]) == (hold_id, name.split("-")[-1])
    items = [{"account_id": account, "idempotency_key": name, **body} for name in ids]
    items[-1] = {**items[-1], "credits": 0}
    answer = await client.post("/v1/holds", json={"holds": items}, headers=GATEWAY)
    results = answer.json()["results"]
    assert [(r["code"], r["body"]["status"]) for r in results] == [
        (200, "settled"), (200, "released"), (200, "expired"), (200, "settled"),
    ]  # fmt: skip


BAD_KEYS = ["", " ", "k ", " k", "k\t", "\tk", "a\x00b", "a\x7fb", "a\x1bb", "k" * 256]


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_a_bad_key_is_400_alone_and_in_a_batch(
    client: httpx.AsyncClient, db: asyncpg.Connection, key: str
) -> None:
    account = await funded(db, "badkey", 100)
    answer = await hold(client, account, {"credits": 1}, key=key)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_idempotency_key"
    items = [
        {"account_id": account, "idempotency_key": key, "credits": 1},
        {"account_id": account, "idempotency_key": "good", "credits": 1},
    ]
    answer = await client.post("/v1/holds", json={"holds": items}, headers=GATEWAY)
    results = answer.json()["results"]
    assert [r["code"] for r in results] == [400, 201]
    assert results[0]["body"]["error"] == "invalid_idempotency_key"
    assert (await balance(client, account))["held"] == 1


async def test_a_non_ascii_key_is_400(client: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    account = await funded(db, "utf8key", 100)
    headers = {**GATEWAY, "Idempotency-Key": "caf\u00e9".encode()}
    answer = await client.post(f"/v1/accounts/{account}/holds", json={"credits": 1},
                               headers=headers)  # fmt: skip
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_idempotency_key")
    items = [{"account_id": account, "idempotency_key": "caf\u00e9", "credits": 1}]
    answer = await client.post("/v1/holds", json={"holds": items}, headers=GATEWAY)
    assert answer.json()["results"][0]["code"] == 400
