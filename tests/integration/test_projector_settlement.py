"""Settling holds in the projector's apply transaction, against the real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from schemas.events import CreditsDebited, CreditsGranted, LedgerEntry, dump
from services.common.settings import Settings
from services.projector import apply, open_projection
from services.projector.apply import prepare_records
from services.projector.ledger import RejectedMessage, SourcedEntry, read_message
from tests.entry_keys import VERIFY_KEYS
from tests.factories import sign

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TOPIC = "test-ledger.v1"
ACCOUNT = "acct-settle"


def granted(credits: int) -> CreditsGranted:
    return sign(CreditsGranted(
        entry_id=uuid.uuid4(), account_id=ACCOUNT, credits=credits, reason="purchase",
        reference="order-1", category="paid", occurred_at=datetime.now(UTC),
    ))  # fmt: skip


def debited(credits: int, hold_id: str | None, at: datetime | None = None) -> CreditsDebited:
    at = at or datetime.now(UTC)
    return CreditsDebited(
        entry_id=uuid.uuid4(), account_id=ACCOUNT, usage_event_id=uuid.uuid4().hex,
        model="mimo-v2-omni", tier="256k", multiplier=Decimal(1), billable_tokens=credits,
        credits=credits, price_version="2026-04-03", occurred_at=at, hold_id=hold_id,
        priced_at=at + timedelta(seconds=1),
    )  # fmt: skip


class Log:
    def __init__(self) -> None:
        self.offset = 0

    def records(self, *entries: LedgerEntry) -> list[SourcedEntry | RejectedMessage]:
        out = []
        for e in entries:
            out.append(read_message(dump(e), 0, self.offset, VERIFY_KEYS))
            self.offset += 1
        return out


@pytest.fixture
async def pool(isolated_settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await open_projection(isolated_settings.database_url)
    yield pool
    await pool.close()


async def apply_records(pool: asyncpg.Pool, records: list[SourcedEntry | RejectedMessage]) -> None:
    async with pool.acquire() as conn:
        await apply(conn, TOPIC, prepare_records(records))


async def place(pool: asyncpg.Pool, credits: int, ttl: int = 600) -> str:
    row = await pool.fetchrow(
        "SELECT * FROM holds.place($1, $2, 'd', $3, $4)", ACCOUNT, uuid.uuid4().hex, credits, ttl
    )
    assert row is not None and row["outcome"] == "placed", row
    hold_id: str = row["hold_id"]
    return hold_id


async def counters(pool: asyncpg.Pool) -> dict[str, int]:
    rows = await pool.fetch("SELECT name, value FROM projector_counters WHERE name LIKE 'hold%'")
    return {r["name"]: r["value"] for r in rows}


async def hold_row(pool: asyncpg.Pool, hold_id: str) -> dict[str, Any]:
    row = await pool.fetchrow(
        "SELECT status, settled_credits, settled_entry_id FROM holds.holds WHERE hold_id = $1",
        hold_id,
    )
    assert row is not None
    return dict(row)


async def held(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT holds.held_now($1)", ACCOUNT))


async def test_a_debit_settles_its_hold_once(pool: asyncpg.Pool) -> None:
    log = Log()
    await apply_records(pool, log.records(granted(1000)))
    small, big = await place(pool, 300), await place(pool, 200)
    assert await held(pool) == 500
    first, overrun = debited(120, small), debited(250, big)
    batch = log.records(first, overrun)
    await apply_records(pool, batch)
    assert await hold_row(pool, small) == {
        "status": "settled", "settled_credits": 120, "settled_entry_id": first.entry_id,
    }  # fmt: skip
    assert (await hold_row(pool, big))["settled_credits"] == 250
    assert await held(pool) == 0
    assert await counters(pool) == {"hold_settled": 2, "hold_overruns": 1}
    balance = await pool.fetchval("SELECT balance FROM balances WHERE account_id = $1", ACCOUNT)
    assert balance == 1000 - 370
    # A redelivery is a duplicate: nothing is settled or counted again.
    await apply_records(pool, batch)
    assert await counters(pool) == {"hold_settled": 2, "hold_overruns": 1}
    assert await pool.fetchval("SELECT settled FROM holds.account_settlements") == 500


async def test_debits_of_released_expired_or_unknown_holds_are_applied_and_counted(
    pool: asyncpg.Pool,
) -> None:
    log = Log()
    await apply_records(pool, log.records(granted(1000)))
    released = await place(pool, 100)
    await pool.fetchval("SELECT outcome FROM holds.release($1, $2)", ACCOUNT, released)
    expired = await place(pool, 100, ttl=1)
    settled = await place(pool, 100)
    await asyncio.sleep(1.1)
    late = datetime.now(UTC)
    await apply_records(pool, log.records(debited(10, settled)))
    await apply_records(
        pool,
        log.records(
            debited(10, released), debited(10, expired, at=late), debited(10, "never-placed"),
            debited(10, settled), debited(10, None),
        ),
    )  # fmt: skip
    assert await counters(pool) == {
        "hold_settled": 1, "hold_released": 1, "hold_expired": 1, "hold_unknown": 1,
        "hold_settled_twice": 1,
    }  # fmt: skip
    assert (await hold_row(pool, released))["status"] == "released"
    spent = await pool.fetchval("SELECT spent FROM balances WHERE account_id = $1", ACCOUNT)
    assert spent == 60
    assert await held(pool) == 0


async def test_a_replay_into_another_schema_changes_no_hold(
    pool: asyncpg.Pool, isolated_settings: Settings
) -> None:
    log = Log()
    grant = log.records(granted(1000))
    await apply_records(pool, grant)
    hold_id = await place(pool, 300)
    debit = log.records(debited(100, hold_id))
    await apply_records(pool, debit)
    before = await hold_row(pool, hold_id)
    shadow = await open_projection(isolated_settings.database_url, "ledger_shadow_test")
    try:
        await apply_records(shadow, grant + debit)
        replayed = await shadow.fetch("SELECT name, value FROM projector_counters")
    finally:
        await shadow.close()
    assert await hold_row(pool, hold_id) == before
    assert await pool.fetchval("SELECT settled FROM holds.account_settlements") == 300
    assert {r["name"]: r["value"] for r in replayed}["hold_settled"] == 1


async def test_a_free_models_hold_of_0_is_placed_and_settled_like_any_other(
    pool: asyncpg.Pool,
) -> None:
    """Placed while available >= 0 (even with no credits at all), settled by its debit of
    0 credits; refused once the account is overdrawn (available < 0)."""
    log = Log()
    free = await place(pool, 0)
    assert await held(pool) == 0
    debit = debited(0, free)
    await apply_records(pool, log.records(granted(10), debit))
    assert await hold_row(pool, free) == {
        "status": "settled", "settled_credits": 0, "settled_entry_id": debit.entry_id,
    }  # fmt: skip
    assert await counters(pool) == {"hold_settled": 1}
    await apply_records(pool, log.records(debited(15, None)))
    refused = await pool.fetchrow("SELECT * FROM holds.place($1, 'free-2', 'd', 0, 600)", ACCOUNT)
    assert refused is not None and (refused["outcome"], refused["available"]) == ("refused", -5)
    many = await pool.fetch(
        "SELECT * FROM holds.place_many($1, $2, $3, $4, $5)",
        [ACCOUNT, "acct-other"], ["free-3", "free-4"], ["d", "d"], [0, 0], [600, 600],
    )  # fmt: skip
    assert [r["outcome"] for r in many] == ["refused", "placed"]
