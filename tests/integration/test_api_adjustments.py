"""POST adjustments: a credits.adjusted on ledger.v1, once per Idempotency-Key; and the
balance limit that credits and adjustments share."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import pytest

from schemas.events import BALANCE_LIMIT, CreditsAdjusted
from services.api.grants import grant_entry_id
from services.common.settings import Settings
from tests.e2e.faults import audit
from tests.integration.api_harness import (
    ADMIN,
    api_client,
    create_projection,
    ledger_entries_for,
    new_account,
    with_tokens,
)
from tests.processes import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

BODY = {"credits": -250, "reason": "refund of a double charge", "reference": "ticket-9"}
GRANT = {"credits": 10, "reason": "purchase", "reference": "order-1"}


@pytest.fixture(scope="module")
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    await create_projection(settings.database_url)
    async with api_client(with_tokens(settings)) as client:
        yield client


def keyed(key: str) -> dict[str, str]:
    return ADMIN | {"Idempotency-Key": key}


async def test_adjustment_publishes_a_credits_adjusted(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    account = new_account("adjust")
    answer = await client.post(f"/v1/accounts/{account}/adjustments", json=BODY, headers=keyed("a"))
    assert answer.status_code == 202
    assert answer.json() == {"entry_id": str(grant_entry_id(account, "a")), "status": "accepted"}
    [event] = await ledger_entries_for(settings, account)
    assert isinstance(event, CreditsAdjusted)
    assert (event.credits, event.reason, event.reference) == (-250, BODY["reason"], "ticket-9")


async def test_same_key_same_body_is_one_entry_other_body_is_409(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    account = new_account("again")
    url = f"/v1/accounts/{account}/adjustments"
    first = await client.post(url, json=BODY, headers=keyed("k"))
    second = await client.post(url, json=BODY, headers=keyed("k"))
    other = await client.post(url, json=BODY | {"credits": 5}, headers=keyed("k"))
    assert (first.status_code, second.status_code, other.status_code) == (202, 202, 409)
    assert first.json()["entry_id"] == second.json()["entry_id"]
    assert other.json()["error"] == "idempotency_conflict"
    assert len(await ledger_entries_for(settings, account)) == 1


async def test_a_key_used_for_credits_cannot_be_an_adjustment(client: httpx.AsyncClient) -> None:
    """The same fields in both bodies: the key stands for one entry only."""
    account = new_account("both")
    body = {"credits": 10, "reason": "purchase", "reference": "order-1"}
    assert (
        await client.post(f"/v1/accounts/{account}/credits", json=body, headers=keyed("one"))
    ).status_code == 202
    reused = await client.post(
        f"/v1/accounts/{account}/adjustments", json=body, headers=keyed("one")
    )
    assert reused.status_code == 409


async def test_reference_is_optional(client: httpx.AsyncClient, settings: Settings) -> None:
    account = new_account("noref")
    body = {"credits": 7, "reason": "goodwill"}
    answer = await client.post(f"/v1/accounts/{account}/adjustments", json=body, headers=keyed("n"))
    assert answer.status_code == 202
    [event] = await ledger_entries_for(settings, account)
    assert isinstance(event, CreditsAdjusted) and event.reference == ""


@pytest.mark.parametrize(
    "body",
    [
        {"credits": 0, "reason": "nothing"},
        {"credits": 10},
        {"credits": 10, "reason": ""},
        {"credits": 10, "reason": 5},
        {"credits": 10, "reason": "r" * 1025},
        {"credits": "10", "reason": "r"},
        {"credits": 1.5, "reason": "r"},
        {"credits": True, "reason": "r"},
        {"credits": 2**63, "reason": "r"},
        {"credits": -(2**70), "reason": "r"},
        {"credits": 10, "reason": "r", "extra": 1},
        {"credits": 10, "reason": "nul\x00"},
        {"credits": 10, "reason": "r", "reference": "\x00"},
        [BODY],
    ],
)
async def test_invalid_adjustments_are_422(client: httpx.AsyncClient, body: object) -> None:
    url = f"/v1/accounts/{new_account('bad')}/adjustments"
    answer = await client.post(url, json=body, headers=keyed("x"))
    assert answer.status_code == 422
    assert answer.json()["error"] == "validation_error"


async def test_missing_idempotency_key_is_400(client: httpx.AsyncClient) -> None:
    answer = await client.post("/v1/accounts/acct-1/adjustments", json=BODY, headers=ADMIN)
    assert answer.status_code == 400
    assert answer.json()["error"] == "missing_idempotency_key"


@pytest.mark.parametrize("key", ["", "k" * 256, "fix-1 ", "fix-1\t", "a\x00b", "a\x7fb"])
async def test_a_bad_idempotency_key_is_400(client: httpx.AsyncClient, key: str) -> None:
    answer = await client.post("/v1/accounts/acct-1/adjustments", json=BODY, headers=keyed(key))
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_idempotency_key"


async def set_flows(settings: Settings, account: str, inflow: int, outflow: int) -> None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(
            """INSERT INTO ledger.balances (account_id, balance, purchased, adjusted, spent,
                                            entries, status, updated_at, inflow, outflow)
               VALUES ($1, $2::bigint - $3::bigint, $2, 0, $3, 1, 'active', $4, $2, $3)""",
            account,
            inflow,
            outflow,
            datetime.now(UTC),
        )
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("route", "body", "inflow", "outflow", "status"),
    [
        ("credits", GRANT, BALANCE_LIMIT - 10, 0, 202),  # reaches the limit exactly
        ("credits", GRANT, BALANCE_LIMIT - 9, 0, 422),  # inflow past it
        ("credits", GRANT, BALANCE_LIMIT - 9, BALANCE_LIMIT - 9, 422),  # spending makes no room
        ("adjustments", {"credits": 10, "reason": "r"}, BALANCE_LIMIT - 9, 0, 422),
        ("adjustments", {"credits": -10, "reason": "r"}, 0, BALANCE_LIMIT - 9, 422),  # outflow
        ("adjustments", {"credits": -10, "reason": "r"}, 5, 0, 202),  # past zero is allowed
    ],
)
async def test_balance_limit(
    client: httpx.AsyncClient,
    settings: Settings,
    route: str,
    body: dict[str, object],
    inflow: int,
    outflow: int,
    status: int,
) -> None:
    account = new_account("limit")
    await set_flows(settings, account, inflow, outflow)
    answer = await client.post(f"/v1/accounts/{account}/{route}", json=body, headers=keyed("l"))
    assert answer.status_code == status, answer.text
    if status == 422:
        assert answer.json()["error"] == "balance_limit"
        assert await ledger_entries_for(settings, account) == []
        # Refused before the claim: the key is still free for a request within the limit.
        credits = body["credits"]
        assert isinstance(credits, int)
        small = {**body, "credits": 1 if credits > 0 else -1}
        again = await client.post(f"/v1/accounts/{account}/{route}", json=small, headers=keyed("l"))
        assert again.status_code == 202, again.text


async def wait_for_balance(database_url: str, account: str, entries: int) -> dict[str, object]:
    conn = await asyncpg.connect(database_url)
    try:
        for _ in range(600):
            row = await conn.fetchrow(
                "SELECT * FROM ledger.balances WHERE account_id = $1 AND entries >= $2",
                account,
                entries,
            )
            if row is not None:
                return dict(row)
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    raise AssertionError(f"{account} has not {entries} entries projected")


async def test_a_negative_adjustment_past_the_balance_is_projected_and_audited(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    """Through the real projector: the account goes below zero (exhausted), and `ledger
    audit` finds the balance identity (granted + adjusted - debited) intact."""
    account = new_account("overdrawn")
    projector = ServiceProcess("projector", isolated_settings, tmp_path).start()
    try:
        async with api_client(with_tokens(isolated_settings)) as client:
            url = f"/v1/accounts/{account}"
            grant = await client.post(f"{url}/credits", json=GRANT, headers=keyed("g"))
            fix = {"credits": -25, "reason": "chargeback"}
            adjust = await client.post(f"{url}/adjustments", json=fix, headers=keyed("a"))
            assert (grant.status_code, adjust.status_code) == (202, 202)
            row = await wait_for_balance(isolated_settings.database_url, account, 2)
            assert (row["balance"], row["purchased"], row["adjusted"]) == (-15, 10, -25)
            assert row["status"] == "exhausted"
            balance = await client.get(f"{url}/balance", headers=ADMIN)
            assert balance.json()["status"] == "exhausted"
    finally:
        projector.stop()
    code, report = audit(isolated_settings)
    assert code == 0, report
