"""POST credits: a valid credits.granted on ledger.v1, exactly once per Idempotency-Key."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from schemas.events import CreditsGranted
from services.api.grants import grant_entry_id
from services.common.settings import Settings
from tests.integration.api_harness import (
    ADMIN,
    api_client,
    ledger_entries_for,
    new_account,
    with_tokens,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

BODY = {"credits": 1_000_000, "reason": "purchase", "reference": "order-7731"}


@pytest.fixture(scope="module")
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(with_tokens(settings)) as client:
        yield client


def keyed(key: str) -> dict[str, str]:
    return ADMIN | {"Idempotency-Key": key}


async def test_post_publishes_a_valid_credits_granted(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    account = new_account("grant")
    answer = await client.post(f"/v1/accounts/{account}/credits", json=BODY, headers=keyed("k1"))
    assert answer.status_code == 202
    body = answer.json()
    assert body == {"entry_id": str(grant_entry_id(account, "k1")), "status": "accepted"}
    [event] = await ledger_entries_for(settings, account)
    assert isinstance(event, CreditsGranted)
    assert str(event.entry_id) == body["entry_id"]
    assert (event.account_id, event.credits, event.reason, event.reference) == (
        account,
        1_000_000,
        "purchase",
        "order-7731",
    )


async def test_same_key_and_body_answers_the_same_entry_once(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    account = new_account("replay")
    url = f"/v1/accounts/{account}/credits"
    first = await client.post(url, json=BODY, headers=keyed("again"))
    second = await client.post(url, json=BODY, headers=keyed("again"))
    assert (first.status_code, second.status_code) == (202, 202)
    assert first.json()["entry_id"] == second.json()["entry_id"]
    assert len(await ledger_entries_for(settings, account)) == 1


async def test_same_key_other_body_is_409(client: httpx.AsyncClient) -> None:
    url = f"/v1/accounts/{new_account('conflict')}/credits"
    assert (await client.post(url, json=BODY, headers=keyed("k"))).status_code == 202
    other = await client.post(url, json=BODY | {"credits": 5}, headers=keyed("k"))
    assert other.status_code == 409
    assert other.json()["error"] == "idempotency_conflict"


async def test_a_key_belongs_to_its_account(client: httpx.AsyncClient) -> None:
    first = await client.post(
        f"/v1/accounts/{new_account('a')}/credits", json=BODY, headers=keyed("shared")
    )
    second = await client.post(
        f"/v1/accounts/{new_account('b')}/credits", json=BODY, headers=keyed("shared")
    )
    assert first.json()["entry_id"] != second.json()["entry_id"]


@pytest.mark.parametrize("concurrency", [20, 100])
async def test_concurrent_posts_with_one_key_publish_one_entry(
    client: httpx.AsyncClient, settings: Settings, concurrency: int
) -> None:
    account = new_account(f"race{concurrency}")
    url = f"/v1/accounts/{account}/credits"
    key = keyed(uuid.uuid4().hex)
    answers = await asyncio.gather(
        *(client.post(url, json=BODY, headers=key) for _ in range(concurrency))
    )
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["entry_id"] for a in answers}) == 1
    assert len(await ledger_entries_for(settings, account)) == 1


async def test_keys_survive_a_restart(settings: Settings) -> None:
    account = new_account("restart")
    url = f"/v1/accounts/{account}/credits"
    async with api_client(with_tokens(settings)) as first_life:
        before = await first_life.post(url, json=BODY, headers=keyed("durable"))
    async with api_client(with_tokens(settings)) as second_life:
        after = await second_life.post(url, json=BODY, headers=keyed("durable"))
        conflict = await second_life.post(
            url, json=BODY | {"reason": "grant"}, headers=keyed("durable")
        )
    assert before.json()["entry_id"] == after.json()["entry_id"]
    assert conflict.status_code == 409
    assert len(await ledger_entries_for(settings, account)) == 1


async def test_an_unpublished_claim_is_published_by_the_retry(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """A publish that failed leaves the claim unpublished; the retry sends the stored event."""
    account = new_account("retry")
    url = f"/v1/accounts/{account}/credits"
    assert (await client.post(url, json=BODY, headers=keyed("flaky"))).status_code == 202
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(
            "UPDATE ledger.idempotency_keys SET published_at = NULL "
            "WHERE account_id = $1 AND idempotency_key = 'flaky'",
            account,
        )
    finally:
        await conn.close()
    assert (await client.post(url, json=BODY, headers=keyed("flaky"))).status_code == 202
    first, second = await ledger_entries_for(settings, account)
    assert first == second  # byte-for-byte the same event: a duplicate for the projector


@pytest.mark.parametrize(
    "body",
    [
        {"credits": 0, "reason": "purchase", "reference": "r"},
        {"credits": -5, "reason": "purchase", "reference": "r"},
        {"credits": 1.5, "reason": "purchase", "reference": "r"},
        {"credits": "10", "reason": "purchase", "reference": "r"},
        {"credits": 10, "reason": "gift", "reference": "r"},
        {"credits": 10, "reason": "purchase"},
        {"credits": 10, "reason": "purchase", "reference": "r", "extra": 1},
        {"credits": 2**63, "reason": "purchase", "reference": "r"},
    ],
)
async def test_invalid_bodies_are_422(client: httpx.AsyncClient, body: dict[str, object]) -> None:
    answer = await client.post(
        f"/v1/accounts/{new_account('bad')}/credits", json=body, headers=keyed("x")
    )
    assert answer.status_code == 422
    assert answer.json()["error"] == "validation_error"


async def test_malformed_json_is_422(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        "/v1/accounts/acct-1/credits",
        content=b'{"credits": ',
        headers=keyed("x") | {"Content-Type": "application/json"},
    )
    assert answer.status_code == 422
    assert answer.json()["error"] == "validation_error"


async def test_missing_idempotency_key_is_400(client: httpx.AsyncClient) -> None:
    answer = await client.post("/v1/accounts/acct-1/credits", json=BODY, headers=ADMIN)
    assert answer.status_code == 400
    assert answer.json()["error"] == "missing_idempotency_key"


@pytest.mark.parametrize(
    "key", ["", "k" * 256, "order-1 ", " order-1", "order-1\t", "a\x00b", "a\x7fb", "a\x1bb"]
)
async def test_a_bad_idempotency_key_is_400(client: httpx.AsyncClient, key: str) -> None:
    answer = await client.post("/v1/accounts/acct-1/credits", json=BODY, headers=keyed(key))
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_idempotency_key"


async def test_a_key_with_a_trailing_space_is_no_second_grant(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    account = new_account("space")
    url = f"/v1/accounts/{account}/credits"
    assert (await client.post(url, json=BODY, headers=keyed("order-1"))).status_code == 202
    for key in ("order-1 ", "order-1  ", "order-1\t", "caf\u00e9".encode().decode("latin-1")):
        headers = ADMIN | {"Idempotency-Key": key.encode("latin-1")}  # type: ignore[dict-item]
        answer = await client.post(url, json=BODY, headers=headers)
        assert (answer.status_code, answer.json()["error"]) == (400, "invalid_idempotency_key")
    assert len(await ledger_entries_for(settings, account)) == 1
