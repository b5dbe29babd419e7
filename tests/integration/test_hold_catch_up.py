"""Applying holds.v1's decisions to a restored hold table (services/api/holds/catch_up.py),
against the real PostgreSQL: what the table has changes nothing, repeats count once, and
the held credits follow."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from schemas.events import HoldPlaced, HoldReleased
from services.api.holds.catch_up import RESTORED_DIGEST, Decisions, apply
from services.common.migrations import migrate
from services.common.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

ACCOUNT = "acct-catch-up"


def placed(credits: int, hours: float = 1.0) -> HoldPlaced:
    now = datetime.now(UTC)
    return HoldPlaced(
        hold_id=str(uuid.uuid4()), account_id=ACCOUNT, credits=credits,
        idempotency_key=uuid.uuid4().hex, expires_at=now + timedelta(hours=hours),
        occurred_at=now,
    )  # fmt: skip


def released(hold: HoldPlaced) -> HoldReleased:
    return HoldReleased(hold_id=hold.hold_id, account_id=ACCOUNT, occurred_at=datetime.now(UTC))


@pytest.fixture
async def conn(isolated_settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    await migrate(isolated_settings.database_url)
    connection = await asyncpg.connect(isolated_settings.database_url)
    yield connection
    await connection.close()


async def place(conn: asyncpg.Connection, credits: int) -> str:
    """A hold decided by the API's own function, as the restored table holds it."""
    row = await conn.fetchrow(
        "SELECT * FROM holds.place($1, $2, 'digest', $3, 3600)", ACCOUNT, uuid.uuid4().hex, credits
    )
    assert row is not None and row["outcome"] == "placed"
    hold_id: str = row["hold_id"]
    return hold_id


async def held(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT holds.held_now($1)", ACCOUNT))


async def test_only_the_missing_decisions_are_applied_and_held_follows(
    conn: asyncpg.Connection,
) -> None:
    await conn.execute(
        "INSERT INTO ledger.balances (account_id, balance, status, updated_at) "
        "VALUES ($1, 1000, 'active', now())",
        ACCOUNT,
    )
    kept = await place(conn, 100)  # in the backup, still active afterwards
    gone = await place(conn, 40)  # in the backup, released afterwards
    late, late_gone = placed(30), placed(20)  # placed after the backup; one released too
    stored = await conn.fetchrow("SELECT * FROM holds.holds WHERE hold_id = $1", kept)
    assert stored is not None
    again = HoldPlaced(
        hold_id=kept, account_id=ACCOUNT, credits=100, idempotency_key=stored["idempotency_key"],
        expires_at=stored["expires_at"], occurred_at=stored["created_at"],
    )  # fmt: skip
    decisions = Decisions()
    for event in (again, late, late_gone):
        decisions.placed[event.hold_id] = event
    gone_event = HoldReleased(hold_id=gone, account_id=ACCOUNT, occurred_at=datetime.now(UTC))
    for event in (gone_event, released(late_gone)):
        decisions.released[event.hold_id] = event
    async with conn.transaction():
        assert await apply(conn, decisions) == (2, 2)
    assert await held(conn) == 100 + 30
    rows = {
        r["hold_id"]: r
        for r in await conn.fetch("SELECT hold_id, status, request_digest FROM holds.holds")
    }
    assert {h: r["status"] for h, r in rows.items()} == {
        kept: "active",
        gone: "released",
        late.hold_id: "active",
        late_gone.hold_id: "released",
    }
    assert rows[late.hold_id]["request_digest"] == RESTORED_DIGEST
    assert rows[kept]["request_digest"] == "digest"
    # Applying them again changes nothing: every decision is in the table now.
    async with conn.transaction():
        assert await apply(conn, decisions) == (0, 0)
    assert await held(conn) == 130
