"""Balance, entries and usage read from projection rows written straight into PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import asyncpg
import httpx
import pytest

from services.api.cursor import encode_cursor
from services.common.settings import Settings
from tests.integration.api_harness import (
    READ,
    api_client,
    create_projection,
    insert_balance,
    insert_entry,
    new_account,
    with_tokens,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

DAY = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    await create_projection(settings.database_url)
    async with api_client(with_tokens(settings)) as client:
        yield client


@pytest.fixture(scope="module")
async def db(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(settings.database_url)
    yield conn
    await conn.close()


async def test_balance_reads_the_balances_row(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    account = new_account("balance")
    await insert_balance(db, account, purchased=1_000_000, spent=3_000, entries=2)
    answer = await client.get(f"/v1/accounts/{account}/balance", headers=READ)
    assert answer.status_code == 200
    assert answer.json() == {
        "account_id": account,
        "balance": 997_000,
        "purchased": 1_000_000,
        "adjusted": 0,
        "spent": 3_000,
        "held": 0,
        "available": 997_000,
        "entries": 2,
        "status": "active",
        "updated_at": "2026-11-27T19:00:00Z",
    }


async def test_exhausted_status_is_reported(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    account = new_account("exhausted")
    await insert_balance(db, account, purchased=10, spent=25, entries=2)
    body = (await client.get(f"/v1/accounts/{account}/balance", headers=READ)).json()
    assert (body["balance"], body["status"]) == (-15, "exhausted")


@pytest.mark.parametrize("route", ["balance", "entries", "usage"])
async def test_unknown_account_is_404(client: httpx.AsyncClient, route: str) -> None:
    answer = await client.get(f"/v1/accounts/{new_account('nobody')}/{route}", headers=READ)
    assert answer.status_code == 404
    assert answer.json()["error"] == "account_not_found"


@pytest.mark.parametrize("bad_id", ["acct%20space", "a" * 129, "acct%2Bplus", "%C3%A9t%C3%A9"])
async def test_invalid_account_id_is_422(client: httpx.AsyncClient, bad_id: str) -> None:
    answer = await client.get(f"/v1/accounts/{bad_id}/balance", headers=READ)
    assert answer.status_code == 422
    assert answer.json()["error"] == "validation_error"


async def test_entries_carry_every_field_newest_first(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    account = new_account("fields")
    granted = await insert_entry(db, account, "granted", 5000, reason="purchase")
    debited = await insert_entry(
        db,
        account,
        "debited",
        -3000,
        model="mimo-v2-pro",
        multiplier=Decimal("2"),
        billable_tokens=1500,
    )
    await insert_balance(db, account, purchased=5000, spent=3000, entries=2)
    body = (await client.get(f"/v1/accounts/{account}/entries", headers=READ)).json()
    assert body["next_cursor"] is None
    newest, oldest = body["entries"]
    assert newest["entry_id"] == str(debited)
    assert newest["type"] == "credits.debited"
    assert (newest["credits"], newest["multiplier"], newest["billable_tokens"]) == (
        -3000,
        "2",
        1500,
    )
    assert (newest["model"], newest["tier"], newest["price_version"]) == (
        "mimo-v2-pro",
        "256k",
        "2026-04-03",
    )
    assert newest["usage_event_id"] == f"usage-{debited}"
    assert oldest["entry_id"] == str(granted)
    assert (oldest["type"], oldest["credits"], oldest["reason"]) == (
        "credits.granted",
        5000,
        "purchase",
    )
    assert oldest["multiplier"] is None and oldest["reference"] == "order-1"


async def test_pages_cover_every_entry_once(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    account = new_account("pages")
    written = [await insert_entry(db, account, "granted", n + 1) for n in range(23)]
    await insert_balance(db, account, purchased=276, spent=0, entries=23)
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "5"} | ({"cursor": cursor} if cursor else {})
        body = (
            await client.get(f"/v1/accounts/{account}/entries", params=params, headers=READ)
        ).json()
        seen += [e["entry_id"] for e in body["entries"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 5
    assert seen == [str(e) for e in reversed(written)]


async def test_a_full_last_page_has_no_next_cursor(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    account = new_account("exact")
    for n in range(4):
        await insert_entry(db, account, "granted", n + 1)
    await insert_balance(db, account, purchased=10, spent=0, entries=4)
    first = (await client.get(f"/v1/accounts/{account}/entries?limit=2", headers=READ)).json()
    second = (
        await client.get(
            f"/v1/accounts/{account}/entries",
            params={"limit": "2", "cursor": first["next_cursor"]},
            headers=READ,
        )
    ).json()
    assert len(second["entries"]) == 2 and second["next_cursor"] is None


@pytest.mark.parametrize("limit", ["0", "1001", "-1", "ten", "1.5"])
async def test_bad_limit_is_422(client: httpx.AsyncClient, limit: str) -> None:
    answer = await client.get(f"/v1/accounts/acct-x/entries?limit={limit}", headers=READ)
    assert answer.status_code == 422
    assert answer.json()["error"] == "validation_error"


@pytest.mark.parametrize(
    "cursor", ["garbage!", "c2VxOg", "c2VxOi0x", encode_cursor(5) + "A", "%00", "A" * 5000]
)
async def test_bad_cursor_is_422(client: httpx.AsyncClient, cursor: str) -> None:
    answer = await client.get(f"/v1/accounts/acct-x/entries?cursor={cursor}", headers=READ)
    assert answer.status_code == 422
    assert answer.json()["error"] == "invalid_cursor"


async def insert_usage(
    conn: asyncpg.Connection,
    account: str,
    day: date,
    model: str,
    n: int,
    tokens: int,
    credits: int,
) -> None:
    await conn.execute(
        "INSERT INTO ledger.usage_daily (account_id, day, model, requests, tokens, credits) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        account,
        day,
        model,
        n,
        tokens,
        credits,
    )


@pytest.fixture
async def usage_account(db: asyncpg.Connection) -> str:
    account = new_account("usage")
    await insert_balance(db, account, purchased=100_000, spent=9_000, entries=9)
    first = DAY.date()
    await insert_usage(db, account, first, "mimo-v2-pro", 2, 1500, 3000)
    await insert_usage(db, account, first, "mimo-v2-omni", 3, 1000, 1000)
    await insert_usage(db, account, first + timedelta(days=1), "mimo-v2-pro", 4, 2500, 5000)
    return account


async def test_usage_by_model_sums_the_days(client: httpx.AsyncClient, usage_account: str) -> None:
    answer = await client.get(f"/v1/accounts/{usage_account}/usage", headers=READ)
    assert answer.json() == {
        "rows": [
            {"key": "mimo-v2-omni", "requests": 3, "tokens": 1000, "credits": 1000},
            {"key": "mimo-v2-pro", "requests": 6, "tokens": 4000, "credits": 8000},
        ]
    }


async def test_usage_by_day(client: httpx.AsyncClient, usage_account: str) -> None:
    answer = await client.get(f"/v1/accounts/{usage_account}/usage?group_by=day", headers=READ)
    assert answer.json()["rows"] == [
        {"key": "2026-11-27", "requests": 5, "tokens": 2500, "credits": 4000},
        {"key": "2026-11-28", "requests": 4, "tokens": 2500, "credits": 5000},
    ]


@pytest.mark.parametrize(
    ("start", "end", "days"),
    [
        ("2026-11-27", "2026-11-28", ["2026-11-27"]),
        ("2026-11-28", None, ["2026-11-28"]),
        (None, "2026-11-27", []),
        ("2026-11-27T23:00:00-02:00", None, ["2026-11-28"]),  # 01:00 UTC on the 28th
        ("2026-11-27", "2026-11-27T00:00:01Z", ["2026-11-27"]),  # to rounds up to midnight
    ],
)
async def test_usage_period_bounds(
    client: httpx.AsyncClient,
    usage_account: str,
    start: str | None,
    end: str | None,
    days: list[str],
) -> None:
    params = {"group_by": "day"} | ({"from": start} if start else {}) | ({"to": end} if end else {})
    answer = await client.get(f"/v1/accounts/{usage_account}/usage", params=params, headers=READ)
    assert [r["key"] for r in answer.json()["rows"]] == days


@pytest.mark.parametrize(
    "query",
    [
        "group_by=week",
        "from=yesterday",
        "from=2026-11-28&to=2026-11-27",
        "from=2026-11-27T10:00:00",
    ],
)
async def test_bad_usage_query_is_422(
    client: httpx.AsyncClient, usage_account: str, query: str
) -> None:
    answer = await client.get(f"/v1/accounts/{usage_account}/usage?{query}", headers=READ)
    assert answer.status_code == 422
    assert answer.json()["error"] in ("validation_error", "invalid_period")
