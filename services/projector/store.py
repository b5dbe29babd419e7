"""Every SQL statement of the projector, and the one transaction that writes a batch.

Tables are unqualified: the connection's search_path names the schema, so the live
projection ("ledger") and a shadow rebuilt by the audit run the very same statements.
Callers go through services/projector/apply.py, which also isolates what cannot be written.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from services.alerts.projection import raise_alerts

# The schema names are the runner's, named here too for the projector's callers.
from services.common.migrations import LIVE_SCHEMA as LIVE_SCHEMA
from services.common.migrations import SCHEMA_NAME as SCHEMA_NAME
from services.common.migrations import migrate
from services.projector import columns, settlement
from services.projector.ledger import (
    RejectedMessage,
    SourcedEntry,
    split_repeats,
)

# The batch's first occurrence of each entry_id, in log order, is copied (COPY, text format;
# columns.journal_copy) into the journal itself: COPY costs PostgreSQL about half the CPU of
# parsing the same rows out of one JSON document. Only when some entry_id is stored already
# (a redelivery, a re-sent event: the COPY fails on the primary key, and its transaction is
# undone) is the batch written again through a temporary staging table and INSERT_JOURNAL,
# which skips the stored ones. pg_temp is named explicitly so a schema of the search_path can
# never shadow the staging table; ON COMMIT DELETE ROWS empties it with each transaction,
# and `ord` numbers its rows in the order COPY wrote them, the log order.
JOURNAL_STAGING = """
CREATE TEMPORARY TABLE IF NOT EXISTS journal_staging (
    entry_id uuid, account_id text, kind text, credits bigint, model text, tier text,
    multiplier numeric, billable_tokens bigint, price_version text, usage_event_id text,
    reason text, reference text, occurred_at timestamptz, priced_at timestamptz,
    content_digest text, source_partition int, source_offset bigint,
    ord bigint GENERATED ALWAYS AS IDENTITY
) ON COMMIT DELETE ROWS
"""
JOURNAL_COPY_COLUMNS = (
    "entry_id", "account_id", "kind", "credits", "model", "tier", "multiplier",
    "billable_tokens", "price_version", "usage_event_id", "reason", "reference", "occurred_at",
    "priced_at", "content_digest", "source_partition", "source_offset",
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
APPLIED_IDS = "SELECT entry_id FROM journal WHERE entry_id = ANY($1::uuid[])"
# Only when a batch is screened (apply.py): locked, so a second projector holding the same
# partition for a moment waits instead of screening against flows that are about to change.
STORED_FLOWS = """
SELECT account_id, inflow, outflow FROM balances WHERE account_id = ANY($1::text[])
ORDER BY account_id FOR UPDATE
"""

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
INSERT INTO rejected_entries (topic, source_partition, source_offset, payload, raw, error,
                              reason)
SELECT $1, * FROM unnest($2::int[], $3::bigint[], $4::text[], $5::bytea[], $6::text[],
                         $7::text[])
ON CONFLICT (topic, source_partition, source_offset) DO NOTHING
RETURNING source_partition, source_offset
"""

# Deltas are summed per account (one row each) by columns.totals; the status rule is
# ledger.status_for applied to the stored balance after the addition. inflow and outflow only
# grow, so PostgreSQL's bigint arithmetic refusing their sums (or asyncpg a delta past
# bigint) means exactly that some entry of the batch passes BALANCE_LIMIT (= bigint's
# largest): then apply.py screens the batch entry by entry (ledger.screen).
UPSERT_TOTALS = """
WITH balance_rows AS (
    INSERT INTO balances (account_id, balance, purchased, adjusted, spent, entries, status,
                          updated_at, inflow, outflow)
    SELECT account_id, inflow - outflow, purchased, adjusted, spent, entries,
           CASE WHEN inflow - outflow > 0 THEN 'active' ELSE 'exhausted' END,
           updated_at, inflow, outflow
    FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[],
                $6::timestamptz[], $7::bigint[], $8::bigint[])
         AS d(account_id, purchased, adjusted, spent, entries, updated_at, inflow, outflow)
    ON CONFLICT (account_id) DO UPDATE SET
        inflow = balances.inflow + EXCLUDED.inflow,
        outflow = balances.outflow + EXCLUDED.outflow,
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
    SELECT * FROM unnest($9::text[], $10::date[], $11::text[], $12::bigint[], $13::bigint[],
                         $14::bigint[])
    ON CONFLICT (account_id, day, model) DO UPDATE SET
        requests = usage_daily.requests + EXCLUDED.requests,
        tokens = usage_daily.tokens + EXCLUDED.tokens,
        credits = usage_daily.credits + EXCLUDED.credits
), hourly_rows AS (
    INSERT INTO usage_hourly (account_id, hour, model, requests, tokens, credits)
    SELECT * FROM unnest($15::text[], $16::timestamptz[], $17::text[], $18::bigint[],
                         $19::bigint[], $20::bigint[])
    ON CONFLICT (account_id, hour, model) DO UPDATE SET
        requests = usage_hourly.requests + EXCLUDED.requests,
        tokens = usage_hourly.tokens + EXCLUDED.tokens,
        credits = usage_hourly.credits + EXCLUDED.credits
), offset_rows AS (
    INSERT INTO applied_offsets (topic, partition, next_offset)
    SELECT $21, * FROM unnest($22::int[], $23::bigint[])
    ON CONFLICT (topic, partition) DO UPDATE SET
        next_offset = greatest(applied_offsets.next_offset, EXCLUDED.next_offset)
)
INSERT INTO projector_counters (name, value)
SELECT * FROM unnest($24::text[], $25::bigint[])
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

    def counts(self) -> dict[str, int]:
        """The projector_counters this batch adds to, and the progress line's counts."""
        return {
            "applied": self.applied,
            "duplicates": self.duplicates,
            "conflicts": self.conflicts,
            "rejected": self.rejected,
        }

    def __add__(self, other: ApplyResult) -> ApplyResult:
        """Two parts of one batch, written one after the other."""
        return ApplyResult(
            applied=self.applied + other.applied,
            duplicates=self.duplicates + other.duplicates,
            conflicts=self.conflicts + other.conflicts,
            rejected=self.rejected + other.rejected,
            new_conflicts=self.new_conflicts + other.new_conflicts,
            new_rejections=self.new_rejections + other.new_rejections,
        )


async def open_projection(database_url: str, schema: str = LIVE_SCHEMA) -> asyncpg.Pool:
    """A pool whose connections see `schema` (created and migrated) as their search_path.

    Creates the database when it is missing, and applies every pending migration of the
    database first (services/common/migrations.py). Safe to call from several processes at
    once.
    """
    if not SCHEMA_NAME.match(schema):
        raise ValueError(f"schema name {schema!r} must match {SCHEMA_NAME.pattern}")
    await migrate(database_url, schema)
    pool = await asyncpg.create_pool(
        database_url, min_size=1, max_size=4, server_settings={"search_path": schema}
    )
    assert pool is not None
    return pool


async def write_batch(
    conn: asyncpg.Connection, topic: str, batch: columns.PreparedBatch
) -> ApplyResult:
    """Writes one batch of ledger.v1 records in ONE transaction, idempotently by entry_id.

    Writes journal rows, balances, daily and hourly usage, conflicts, rejected messages, the
    next offset per partition and the counters. Records are in log order per partition.
    """
    try:
        return await _write_batch(conn, topic, batch, _copy_journal)
    except asyncpg.UniqueViolationError:
        # Some entry_id is in the journal already (a redelivery, a re-sent event): the COPY
        # straight into the journal failed, and its transaction is undone. Again, staged.
        return await _write_batch(conn, topic, batch, _insert_journal_staged)


async def _write_batch(
    conn: asyncpg.Connection,
    topic: str,
    batch: columns.PreparedBatch,
    insert_journal: Callable[[asyncpg.Connection, columns.PreparedBatch], Awaitable[list[UUID]]],
) -> ApplyResult:
    plan = batch.plan
    async with conn.transaction():
        known = set(await insert_journal(conn, batch))
        inserted, repeats = _split_known(plan.candidates, known)
        repeats += plan.repeats
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
        # Crossings read the balances as they were before this batch (services/alerts).
        await raise_alerts(conn, [r.entry for r in inserted], columns.spans(totals))
        await _add_totals(conn, topic, totals, batch.offsets, result)
    return result


def _split_known(
    candidates: list[SourcedEntry], known: set[UUID]
) -> tuple[list[SourcedEntry], list[SourcedEntry]]:
    """(new, already in the journal); nearly always all new, which costs nothing here."""
    if not known:
        return candidates, []
    inserted = [r for r in candidates if r.entry.entry_id not in known]
    return inserted, [r for r in candidates if r.entry.entry_id in known]


async def _copy_journal(conn: asyncpg.Connection, batch: columns.PreparedBatch) -> list[UUID]:
    """Copies the batch's candidates into the journal; fails on an entry_id stored before."""
    if batch.plan.candidates:
        await _copy(conn, batch, "journal", None)
    return []


async def _insert_journal_staged(
    conn: asyncpg.Connection, batch: columns.PreparedBatch
) -> list[UUID]:
    """Inserts the batch's candidates not in the journal yet; answers the entry_ids that
    were (there is at least one, or this would not run: _copy_journal failed)."""
    if not batch.plan.candidates:
        return []
    await conn.execute(JOURNAL_STAGING)
    await _copy(conn, batch, "journal_staging", "pg_temp")
    try:
        async with conn.transaction():  # a savepoint: undone when some were known
            if await conn.fetchval(INSERT_JOURNAL) == len(batch.plan.candidates):
                return []  # none known: what failed the straight COPY lies elsewhere
            raise _SomeKnown
    except _SomeKnown:
        return [r["entry_id"] for r in await conn.fetch(INSERT_JOURNAL_LISTING_KNOWN)]


async def _copy(
    conn: asyncpg.Connection, batch: columns.PreparedBatch, table: str, schema: str | None
) -> None:
    await conn.copy_to_table(
        table,
        schema_name=schema,
        source=_one_chunk(batch.journal),
        columns=JOURNAL_COPY_COLUMNS,
        format="text",
    )


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
    counters = result.counts()
    await conn.execute(
        UPSERT_TOTALS, *totals, topic, *offsets, list(counters), list(counters.values())
    )


async def stored_flows(conn: asyncpg.Connection, accounts: list[str]) -> dict[str, tuple[int, int]]:
    """(inflow, outflow) of each stored account among `accounts`, locked until the end of
    the caller's transaction."""
    rows = await conn.fetch(STORED_FLOWS, accounts)
    return {r["account_id"]: (r["inflow"], r["outflow"]) for r in rows}


async def applied_ids(conn: asyncpg.Connection, ids: list[UUID]) -> set[UUID]:
    return {r["entry_id"] for r in await conn.fetch(APPLIED_IDS, ids)}
