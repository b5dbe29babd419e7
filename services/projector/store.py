"""Every SQL statement of the projector, and the one transaction that applies a batch.

Tables are unqualified: the connection's search_path names the schema, so the live
projection ("ledger") and a shadow rebuilt by the audit run the very same statements.

For the audit / rebuild:

    pool = await open_projection(database_url, "ledger_shadow")
    async with pool.acquire() as conn:
        result = await apply_batch(conn, topic, [read_message(m.value, m.partition, m.offset)
                                                 for m in messages])
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import asyncpg

from services.common.db import ensure_database
from services.projector import columns, settlement
from services.projector.ledger import (
    RejectedMessage,
    SourcedEntry,
    split_repeats,
)

LIVE_SCHEMA = "ledger"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# A schema name is configuration, never data; it is checked before it is quoted into DDL.
SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(hashtext('ledger-projector-migrations'))"
MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name       text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
APPLIED_MIGRATIONS = "SELECT name FROM schema_migrations"
RECORD_MIGRATION = "INSERT INTO schema_migrations (name) VALUES ($1)"

# The batch's first occurrence of each entry_id, in log order, is copied (COPY, text format;
# columns.journal_copy) into a temporary staging table, then inserted from there: COPY costs
# PostgreSQL about half the CPU of parsing the same rows out of one JSON document.
# pg_temp is named explicitly so a schema of the search_path can never shadow the staging
# table. ON COMMIT DELETE ROWS empties it with each transaction, applied or rolled back.
JOURNAL_STAGING = """
CREATE TEMPORARY TABLE IF NOT EXISTS journal_staging (
    entry_id uuid, account_id text, kind text, credits bigint, model text, tier text,
    multiplier numeric, billable_tokens bigint, price_version text, usage_event_id text,
    reason text, reference text, occurred_at timestamptz, priced_at timestamptz,
    content_digest text, source_partition int, source_offset bigint, ord int
) ON COMMIT DELETE ROWS
"""
JOURNAL_COPY_COLUMNS = (
    "entry_id", "account_id", "kind", "credits", "model", "tier", "multiplier",
    "billable_tokens", "price_version", "usage_event_id", "reason", "reference", "occurred_at",
    "priced_at", "content_digest", "source_partition", "source_offset", "ord",
)  # fmt: skip
# Inserts the staged rows; answers how many were new. Almost always all of them: a batch
# only meets stored entry_ids after a redelivery or in a re-sent event.
INSERT_JOURNAL = """
WITH inserted AS (
    INSERT INTO journal (entry_id, account_id, kind, credits, model, tier, multiplier,
                         billable_tokens, price_version, usage_event_id, reason, reference,
                         occurred_at, priced_at, content_digest, source_partition,
                         source_offset)
    SELECT entry_id, account_id, kind, credits, model, tier, multiplier, billable_tokens,
           price_version, usage_event_id, reason, reference, occurred_at, priced_at,
           content_digest, source_partition, source_offset
    FROM pg_temp.journal_staging ORDER BY ord
    ON CONFLICT (entry_id) DO NOTHING
    RETURNING 1
)
SELECT count(*) FROM inserted
"""
# The same insert, answering which entry_ids were already in the journal (duplicates or
# conflicts). The set difference costs PostgreSQL about 1.5 us per row, so it runs only
# when INSERT_JOURNAL (rolled back to its savepoint) found some already there.
INSERT_JOURNAL_LISTING_KNOWN = INSERT_JOURNAL.replace("RETURNING 1", "RETURNING entry_id").replace(
    "SELECT count(*) FROM inserted",
    "SELECT entry_id FROM pg_temp.journal_staging EXCEPT SELECT entry_id FROM inserted",
)

APPLIED_DIGESTS = "SELECT entry_id, content_digest FROM journal WHERE entry_id = ANY($1::uuid[])"

# The applied content is the journal row as stored; the conflicting one is the message itself.
INSERT_CONFLICTS = """
INSERT INTO conflicts (entry_id, conflict_digest, account_id, applied_content,
                       conflicting_content, source_partition, source_offset)
SELECT c.entry_id, c.digest, c.account_id, to_jsonb(j) - 'seq' - 'applied_at',
       c.content::jsonb, c.source_partition, c.source_offset
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int[], $6::bigint[])
     AS c(entry_id, digest, account_id, content, source_partition, source_offset)
JOIN journal j USING (entry_id)
ON CONFLICT (entry_id, conflict_digest) DO NOTHING
RETURNING entry_id, conflict_digest
"""

INSERT_REJECTED = """
INSERT INTO rejected_entries (topic, source_partition, source_offset, payload, raw, error)
SELECT $1, * FROM unnest($2::int[], $3::bigint[], $4::text[], $5::bytea[], $6::text[])
ON CONFLICT (topic, source_partition, source_offset) DO NOTHING
RETURNING source_partition, source_offset
"""

# Deltas are summed per account (one row each) by ledger.account_deltas; the status rule is
# ledger.status_for applied to the stored balance after the addition.
UPSERT_TOTALS = """
WITH balance_rows AS (
    INSERT INTO balances (account_id, balance, purchased, adjusted, spent, entries, status,
                          updated_at)
    SELECT account_id, purchased + adjusted - spent, purchased, adjusted, spent, entries,
           CASE WHEN purchased + adjusted - spent > 0 THEN 'active' ELSE 'exhausted' END,
           updated_at
    FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[],
                $6::timestamptz[]) AS d(account_id, purchased, adjusted, spent, entries,
                                        updated_at)
    ON CONFLICT (account_id) DO UPDATE SET
        balance = balances.balance + EXCLUDED.balance,
        purchased = balances.purchased + EXCLUDED.purchased,
        adjusted = balances.adjusted + EXCLUDED.adjusted,
        spent = balances.spent + EXCLUDED.spent,
        entries = balances.entries + EXCLUDED.entries,
        status = CASE WHEN balances.balance + EXCLUDED.balance > 0
                      THEN 'active' ELSE 'exhausted' END,
        updated_at = greatest(balances.updated_at, EXCLUDED.updated_at)
), usage_rows AS (
    INSERT INTO usage_daily (account_id, day, model, requests, tokens, credits)
    SELECT * FROM unnest($7::text[], $8::date[], $9::text[], $10::bigint[], $11::bigint[],
                         $12::bigint[])
    ON CONFLICT (account_id, day, model) DO UPDATE SET
        requests = usage_daily.requests + EXCLUDED.requests,
        tokens = usage_daily.tokens + EXCLUDED.tokens,
        credits = usage_daily.credits + EXCLUDED.credits
), offset_rows AS (
    INSERT INTO applied_offsets (topic, partition, next_offset)
    SELECT $13, * FROM unnest($14::int[], $15::bigint[])
    ON CONFLICT (topic, partition) DO UPDATE SET
        next_offset = greatest(applied_offsets.next_offset, EXCLUDED.next_offset)
)
INSERT INTO projector_counters (name, value)
SELECT * FROM unnest($16::text[], $17::bigint[])
ON CONFLICT (name) DO UPDATE SET value = projector_counters.value + EXCLUDED.value
"""


@dataclass(frozen=True, slots=True)
class ApplyResult:
    applied: int
    duplicates: int
    conflicts: int
    rejected: int = 0
    # What the caller should log, once: first sightings only, redeliveries are not repeated.
    new_conflicts: tuple[SourcedEntry, ...] = ()
    new_rejections: tuple[RejectedMessage, ...] = ()


async def open_projection(database_url: str, schema: str = LIVE_SCHEMA) -> asyncpg.Pool:
    """A pool whose connections see `schema` (created and migrated) as their search_path.

    Creates the database when it is missing. Safe to call from several processes at once.
    """
    if not SCHEMA_NAME.match(schema):
        raise ValueError(f"schema name {schema!r} must match {SCHEMA_NAME.pattern}")
    await ensure_database(database_url)
    pool = await asyncpg.create_pool(
        database_url, min_size=1, max_size=4, server_settings={"search_path": schema}
    )
    assert pool is not None
    try:
        async with pool.acquire() as conn:
            await migrate(conn, schema)
    except BaseException:
        await pool.close()
        raise
    return pool


async def migrate(conn: asyncpg.Connection, schema: str) -> list[str]:
    """Applies the migrations not yet recorded in `schema`; returns their names."""
    async with conn.transaction():
        await conn.execute(MIGRATION_LOCK)
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(MIGRATIONS_TABLE)
        done = {row["name"] for row in await conn.fetch(APPLIED_MIGRATIONS)}
        applied = []
        for path in sorted(MIGRATIONS.glob("*.sql")):
            if path.name not in done:
                await conn.execute(path.read_text())
                await conn.execute(RECORD_MIGRATION, path.name)
                applied.append(path.name)
        return applied


async def apply_batch(
    conn: asyncpg.Connection, topic: str, records: Sequence[SourcedEntry | RejectedMessage]
) -> ApplyResult:
    """Applies one batch of ledger.v1 records in ONE transaction, idempotently by entry_id.

    Writes journal rows, balances, daily usage, conflicts, rejected messages, the next
    offset per partition and the counters. Records are in log order per partition.
    """
    return await apply_prepared(conn, topic, columns.prepare(records))


async def apply_prepared(
    conn: asyncpg.Connection, topic: str, batch: columns.PreparedBatch
) -> ApplyResult:
    """apply_batch for a batch whose parameters columns.prepare computed beforehand."""
    plan = batch.plan
    async with conn.transaction():
        known = set(await _insert_journal(conn, batch))
        inserted = [r for r in plan.candidates if r.entry.entry_id not in known]
        repeats = [r for r in plan.candidates if r.entry.entry_id in known] + plan.repeats
        new_conflicts = await _store_conflicts(conn, repeats)
        new_rejections = await _store_rejected(conn, topic, plan.rejected)
        result = ApplyResult(
            applied=len(inserted),
            duplicates=len(repeats) - len(new_conflicts),
            conflicts=len(new_conflicts),
            rejected=len(new_rejections),
            new_conflicts=tuple(new_conflicts),
            new_rejections=tuple(new_rejections),
        )
        await settlement.settle(conn, inserted)
        totals = columns.totals(r.entry for r in inserted) if known else batch.totals
        await _add_totals(conn, topic, totals, batch.offsets, result)
    return result


async def _insert_journal(conn: asyncpg.Connection, batch: columns.PreparedBatch) -> list[UUID]:
    if not batch.plan.candidates:
        return []
    await conn.execute(JOURNAL_STAGING)
    await conn.copy_to_table(
        "journal_staging",
        schema_name="pg_temp",
        source=_one_chunk(batch.journal),
        columns=JOURNAL_COPY_COLUMNS,
        format="text",
    )
    try:
        async with conn.transaction():  # a savepoint: undone when some were known
            if await conn.fetchval(INSERT_JOURNAL) == len(batch.plan.candidates):
                return []
            raise _SomeKnown
    except _SomeKnown:
        return [r["entry_id"] for r in await conn.fetch(INSERT_JOURNAL_LISTING_KNOWN)]


class _SomeKnown(Exception):
    """Some staged entry_ids were in the journal already: INSERT_JOURNAL is undone."""


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    """COPY input as an async iterable: asyncpg reads a file object in a worker thread,
    which costs more CPU than the COPY itself."""
    yield data


async def _store_conflicts(
    conn: asyncpg.Connection, repeats: Sequence[SourcedEntry]
) -> list[SourcedEntry]:
    """Stores the conflicts among the repeats; returns those stored for the first time.

    Every other repeat is a duplicate: of the applied entry or of an already stored conflict.
    """
    if not repeats:
        return []
    ids = list({r.entry.entry_id for r in repeats})
    digests = {r["entry_id"]: r["content_digest"] for r in await conn.fetch(APPLIED_DIGESTS, ids)}
    _, conflicts = split_repeats(repeats, digests)
    if not conflicts:
        return []
    rows = await conn.fetch(INSERT_CONFLICTS, *columns.conflicts(conflicts))
    stored = {(r["entry_id"], r["conflict_digest"]) for r in rows}
    return [c for c in conflicts if (c.entry.entry_id, c.digest) in stored]


async def _store_rejected(
    conn: asyncpg.Connection, topic: str, rejected: Sequence[RejectedMessage]
) -> list[RejectedMessage]:
    if not rejected:
        return []
    rows = await conn.fetch(INSERT_REJECTED, topic, *columns.rejected(rejected))
    stored = {(r["source_partition"], r["source_offset"]) for r in rows}
    return [m for m in rejected if (m.partition, m.offset) in stored]


async def _add_totals(
    conn: asyncpg.Connection,
    topic: str,
    totals: columns.Columns,
    offsets: columns.Columns,
    result: ApplyResult,
) -> None:
    counters = {
        "applied": result.applied,
        "duplicates": result.duplicates,
        "conflicts": result.conflicts,
        "rejected": result.rejected,
    }
    await conn.execute(
        UPSERT_TOTALS, *totals, topic, *offsets, list(counters), list(counters.values())
    )
