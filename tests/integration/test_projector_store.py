"""The projector's apply surface (services/projector/apply.py) and open_projection against
the real PostgreSQL (one fresh database per test)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from schemas.events import CreditsAdjusted
from services.common.migrations import plan
from services.common.settings import Settings
from services.projector.apply import apply as apply_batch
from services.projector.apply import prepare_records
from services.projector.ledger import RejectedMessage, SourcedEntry
from services.projector.store import open_projection
from tests.factories import T0, adjusted, debited, granted, sign
from tests.integration.projector_harness import BALANCES, Log

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TOPIC = "test-ledger.v1"


@pytest.fixture
async def pool(isolated_settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await open_projection(isolated_settings.database_url)
    yield pool
    await pool.close()


async def apply(pool: asyncpg.Pool, records: list[SourcedEntry | RejectedMessage]) -> Any:
    async with pool.acquire() as conn:
        return await apply_batch(conn, TOPIC, prepare_records(records))


async def table(pool: asyncpg.Pool, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await pool.fetch(sql)]


USAGE = """
SELECT account_id, day::text, model, requests, tokens, credits FROM usage_daily ORDER BY 1, 2, 3
"""
COUNTERS = "SELECT name, value FROM projector_counters ORDER BY 1"


async def test_balances_journal_and_usage_equal_hand_computed_figures(pool: asyncpg.Pool) -> None:
    log = Log()
    late = T0 + timedelta(days=1, hours=1)
    first = log.records(granted("a", 1000), debited("a", 300), debited("b", 40), adjusted("a", -50))
    second = log.records(
        debited("a", 200, at=late), debited("a", 10, "mimo-v2-omni"), granted("c", 5)
    )
    assert (await apply(pool, first)).applied == 4
    assert (await apply(pool, second)).applied == 3

    assert await table(pool, BALANCES) == [
        ("a", 1000 - 50 - 300 - 200 - 10, 1000, -50, 510, 5, "active"),
        ("b", -40, 0, 0, 40, 1, "exhausted"),
        ("c", 5, 5, 0, 0, 1, "active"),
    ]
    assert await pool.fetchval("SELECT updated_at FROM balances WHERE account_id = 'a'") == late
    assert await table(pool, USAGE) == [
        ("a", "2026-11-27", "mimo-v2-omni", 1, 5, 10),
        ("a", "2026-11-27", "mimo-v2-pro", 1, 150, 300),
        ("a", "2026-11-28", "mimo-v2-pro", 1, 100, 200),
        ("b", "2026-11-27", "mimo-v2-pro", 1, 20, 40),
    ]  # fmt: skip
    journal = await table(pool, "SELECT account_id, kind, credits FROM journal ORDER BY seq")
    assert journal == [
        ("a", "granted", 1000), ("a", "debited", -300), ("b", "debited", -40),
        ("a", "adjusted", -50), ("a", "debited", -200), ("a", "debited", -10), ("c", "granted", 5),
    ]  # fmt: skip
    assert await table(pool, "SELECT partition, next_offset FROM applied_offsets") == [(0, 7)]
    assert await table(pool, COUNTERS) == [
        ("applied", 7), ("conflicts", 0), ("duplicates", 0), ("rejected", 0),
    ]  # fmt: skip


async def test_a_redelivered_batch_changes_nothing_and_counts_duplicates(
    pool: asyncpg.Pool,
) -> None:
    entry = debited("a", 30)
    repriced = entry.model_copy(update={"priced_at": entry.priced_at + timedelta(days=3)})
    batch = Log().records(granted("a", 100), entry)
    await apply(pool, batch)
    before = await table(pool, BALANCES), await table(pool, "SELECT * FROM journal ORDER BY seq")

    result = await apply(pool, [*batch, *Log(1).records(repriced)])

    assert (result.applied, result.duplicates, result.conflicts) == (0, 3, 0)
    assert (
        await table(pool, BALANCES),
        await table(pool, "SELECT * FROM journal ORDER BY seq"),
    ) == before
    assert dict(await table(pool, COUNTERS))["duplicates"] == 3


async def test_duplicates_and_conflicts_within_one_batch(pool: asyncpg.Pool) -> None:
    entry = granted("a", 100)
    other = sign(entry.model_copy(update={"credits": 999}))
    records = Log().records(entry, entry, other, other)

    result = await apply(pool, records)

    assert (result.applied, result.duplicates, result.conflicts) == (1, 2, 1)
    assert [c.offset for c in result.new_conflicts] == [2]
    assert await table(pool, BALANCES) == [("a", 100, 100, 0, 0, 1, "active")]
    row = await pool.fetchrow("SELECT * FROM conflicts")
    assert row["entry_id"] == entry.entry_id and row["source_offset"] == 2
    assert '"credits": 100' in row["applied_content"]
    assert '"credits": 999' in row["conflicting_content"]

    again = await apply(pool, Log(1).records(other))
    assert (again.applied, again.duplicates, again.conflicts) == (0, 1, 0)
    assert await pool.fetchval("SELECT count(*) FROM conflicts") == 1


async def test_overdraft_then_top_up_flips_status_both_ways(pool: asyncpg.Pool) -> None:
    log = Log()
    await apply(pool, log.records(granted("a", 100), debited("a", 150)))
    assert await table(pool, BALANCES) == [("a", -50, 100, 0, 150, 2, "exhausted")]
    await apply(pool, log.records(granted("a", 60)))
    assert await table(pool, BALANCES) == [("a", 10, 160, 0, 150, 3, "active")]
    await apply(pool, log.records(debited("a", 10)))
    assert (await table(pool, BALANCES))[0][-1] == "exhausted"


async def test_malformed_messages_are_stored_once_and_counted(pool: asyncpg.Pool) -> None:
    batch = Log().records(b"not json\x00\xff", granted("a", 5), b'{"type": "credits.granted"}')
    result = await apply(pool, batch)
    assert (result.applied, result.rejected) == (1, 2)
    rows = await pool.fetch("SELECT * FROM rejected_entries ORDER BY source_offset")
    assert [(r["source_offset"], r["raw"]) for r in rows] == [
        (0, b"not json\x00\xff"),
        (2, batch[2].raw),
    ]  # type: ignore[union-attr]
    assert rows[0]["payload"] == "not json\\x00\\xff"
    assert (await apply(pool, batch)).rejected == 0
    assert dict(await table(pool, COUNTERS))["rejected"] == 2
    assert await table(pool, "SELECT partition, next_offset FROM applied_offsets") == [(0, 3)]


async def test_a_shadow_schema_gets_the_same_projection(
    isolated_settings: Settings, pool: asyncpg.Pool
) -> None:
    batch = Log().records(granted("a", 100), debited("a", 30), debited("b", 4), adjusted("b", 9))
    shadow = await open_projection(isolated_settings.database_url, "ledger_shadow")
    try:
        await apply(pool, batch)
        await apply(shadow, batch[:2])
        assert await table(shadow, BALANCES) == [("a", 70, 100, 0, 30, 2, "active")]
        await apply(shadow, batch[2:])
        assert await table(shadow, BALANCES) == await table(pool, BALANCES)
    finally:
        await shadow.close()
    again = await open_projection(isolated_settings.database_url, "ledger_shadow")
    migrations = await again.fetchval("SELECT count(*) FROM schema_versions")
    await again.close()
    assert migrations == len(plan("ledger_shadow"))  # each once, the projection's only


async def test_schema_names_are_checked(isolated_settings: Settings) -> None:
    with pytest.raises(ValueError, match="schema name"):
        await open_projection(isolated_settings.database_url, 'x"; DROP TABLE journal; --')


ODD_TEXT = "tab\there, line\nbreak, cr\rhere, back\\slash, \\N, \\., é€😀, 'quote\" end\\"


async def test_journal_rows_hold_every_value_exactly_whatever_the_text(pool: asyncpg.Pool) -> None:
    """The journal is COPYed in text format: COPY's syntax characters must be escaped."""
    india = timezone(timedelta(hours=5, minutes=30))
    debit = debited("a:b@c.d-e_f", 12).model_copy(
        update={
            "usage_event_id": ODD_TEXT, "model": ODD_TEXT[:128], "tier": "t\tier",
            "price_version": "v\n1", "multiplier": Decimal("0.125"),
            "occurred_at": datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=india),
            "priced_at": datetime(1, 1, 2, tzinfo=UTC),
        }
    )  # fmt: skip
    grant = sign(granted("a:b@c.d-e_f", 7).model_copy(update={"reference": ODD_TEXT}))
    fix = sign(
        CreditsAdjusted(
            entry_id=uuid.uuid4(), account_id="z", credits=-3, reason=ODD_TEXT, occurred_at=T0
        )
    )
    records = Log().records(debit, grant, fix)
    assert (await apply(pool, records)).applied == 3
    rows = await pool.fetch("SELECT * FROM journal ORDER BY seq")
    assert [r["entry_id"] for r in rows] == [debit.entry_id, grant.entry_id, fix.entry_id]
    d, g, f = rows
    assert (d["account_id"], d["kind"], d["credits"], d["usage_event_id"], d["model"]) == (
        debit.account_id, "debited", -12, ODD_TEXT, ODD_TEXT[:128],
    )  # fmt: skip
    assert (d["tier"], d["price_version"], d["multiplier"], d["billable_tokens"]) == (
        "t\tier", "v\n1", Decimal("0.125"), 6,
    )  # fmt: skip
    assert (d["occurred_at"], d["priced_at"]) == (debit.occurred_at, debit.priced_at)
    assert (d["reason"], d["reference"]) == (None, None)
    assert (g["kind"], g["credits"], g["reference"], g["reason"], g["model"]) == (
        "granted", 7, ODD_TEXT, "purchase", None,
    )  # fmt: skip
    assert (f["kind"], f["credits"], f["reason"], f["reference"], f["priced_at"]) == (
        "adjusted", -3, ODD_TEXT, "", None,
    )  # fmt: skip
    assert [r["content_digest"] for r in rows] == [r.digest for r in records]  # type: ignore[union-attr]
    assert [(r["source_partition"], r["source_offset"]) for r in rows] == [(0, 0), (0, 1), (0, 2)]


async def test_a_batch_mixing_new_and_applied_entries_applies_only_the_new(
    pool: asyncpg.Pool,
) -> None:
    """The journal insert is undone and redone when it meets stored entry_ids."""
    log = Log()
    first, second, third = granted("a", 100), debited("a", 30), debited("b", 4)
    await apply(pool, log.records(first, second))
    result = await apply(pool, [*Log().records(first, second), *log.records(third)])
    assert (result.applied, result.duplicates, result.conflicts) == (1, 2, 0)
    assert await table(pool, BALANCES) == [
        ("a", 70, 100, 0, 30, 2, "active"),
        ("b", -4, 0, 0, 4, 1, "exhausted"),
    ]
    journal = await table(pool, "SELECT entry_id, source_offset FROM journal ORDER BY seq")
    assert journal == [(first.entry_id, 0), (second.entry_id, 1), (third.entry_id, 2)]
    assert dict(await table(pool, COUNTERS)) == {
        "applied": 3, "conflicts": 0, "duplicates": 2, "rejected": 0,
    }  # fmt: skip
