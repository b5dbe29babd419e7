"""The audit's hold checks against the real PostgreSQL and Kafka (holds.v1 empty here, so
every decision is either waiting in the outbox or missing)."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from services.audit.holds import hold_differences
from services.common.settings import Settings
from tests.integration.api_harness import create_projection, insert_balance, new_account

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def place(conn: asyncpg.Connection, account: str, credits: int) -> str:
    row = await conn.fetchrow(
        "SELECT * FROM holds.place($1, $2, 'd', $3, 600)", account, uuid.uuid4().hex, credits
    )
    assert row is not None and row["outcome"] == "placed"
    hold_id: str = row["hold_id"]
    return hold_id


async def test_the_audit_finds_what_breaks_the_hold_rules(isolated_settings: Settings) -> None:
    await create_projection(isolated_settings.database_url)
    conn = await asyncpg.connect(isolated_settings.database_url)
    try:
        account = new_account("audit")
        await insert_balance(conn, account, purchased=1000, spent=0, entries=1)
        kept, lost, settled = [await place(conn, account, 100) for _ in range(3)]
        assert await hold_differences(isolated_settings) == []
        await conn.execute("DELETE FROM holds.outbox WHERE hold_id = $1", lost)
        await conn.execute(
            "UPDATE holds.holds SET status = 'settled', settled_credits = 5, "
            "settled_entry_id = $2 WHERE hold_id = $1",
            settled,
            uuid.uuid4(),
        )
        await conn.execute("UPDATE holds.account_holds SET held = held + 1")
        found = await hold_differences(isolated_settings)
    finally:
        await conn.close()
    assert {(d.check, d.field) for d in found} == {
        ("holds", f"hold {lost}"),
        ("holds", f"hold {settled} debit"),
        ("holds", "held"),
    }
    held = next(d for d in found if d.field == "held")
    # 3 x 100 placed, one counted as settled by the projector only in its status: 301 vs 200.
    assert (held.live, held.expected) == (301, 200)
    assert kept not in {d.field for d in found}
