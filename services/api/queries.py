"""Every SQL statement of the API. Parameters are always `$n`, never formatted in.

The projection tables (journal, balances, usage_daily, usage_hourly, projector_counters,
applied_offsets, rejected_entries, conflicts) belong to the projector; the API only reads
them. `idempotency_keys` and `api_keys` are the API's own tables (the statements on
`api_keys` are in services/api/keys/store.py); every table's DDL is a versioned file of its
owner (services/api/migrations/ for the API's), applied by services/common/migrations.py.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal
from uuid import UUID

import asyncpg

# held: the account's active holds (services/api/migrations/002_holds.sql), read without a lock.
BALANCE = """
SELECT account_id, balance, purchased, adjusted, spent, entries, status, updated_at,
       holds.held_now(account_id) AS held
FROM ledger.balances WHERE account_id = $1
"""

ACCOUNT_EXISTS = "SELECT EXISTS (SELECT 1 FROM ledger.balances WHERE account_id = $1)"

# Keyset pagination on the (account_id, seq DESC) index; no OFFSET, so pages stay cheap and
# rows applied meanwhile never shift a page.
ENTRIES = """
SELECT seq, entry_id, kind, credits, model, tier, multiplier, billable_tokens,
       price_version, usage_event_id, reason, reference, occurred_at
FROM ledger.journal
WHERE account_id = $1 AND seq < coalesce($2::bigint, 9223372036854775807)
ORDER BY seq DESC
LIMIT $3
"""

# Both read the daily rollup only: usage never scans the journal.
USAGE_BY_MODEL = """
SELECT model AS key, sum(requests)::bigint AS requests, sum(tokens)::bigint AS tokens,
       sum(credits)::bigint AS credits
FROM ledger.usage_daily
WHERE account_id = $1
  AND ($2::date IS NULL OR day >= $2::date)
  AND ($3::date IS NULL OR day < $3::date)
GROUP BY model
ORDER BY model
"""

USAGE_BY_DAY = """
SELECT to_char(day, 'YYYY-MM-DD') AS key, sum(requests)::bigint AS requests,
       sum(tokens)::bigint AS tokens, sum(credits)::bigint AS credits
FROM ledger.usage_daily
WHERE account_id = $1
  AND ($2::date IS NULL OR day >= $2::date)
  AND ($3::date IS NULL OR day < $3::date)
GROUP BY day
ORDER BY day
"""

USAGE = {"model": USAGE_BY_MODEL, "day": USAGE_BY_DAY}

# The hourly rollup, read only for the recent hours the route allows (periods.hour_range).
USAGE_BY_HOUR = """
SELECT to_char(hour AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:00:00"Z"') AS key,
       sum(requests)::bigint AS requests, sum(tokens)::bigint AS tokens,
       sum(credits)::bigint AS credits
FROM ledger.usage_hourly
WHERE account_id = $1 AND hour >= $2::timestamptz
  AND ($3::timestamptz IS NULL OR hour < $3::timestamptz)
GROUP BY hour
ORDER BY hour
"""

CLAIM_KEY = """
INSERT INTO ledger.idempotency_keys
    (account_id, idempotency_key, request_digest, entry_id, event)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (account_id, idempotency_key) DO NOTHING
"""

LOCK_KEY = """
SELECT request_digest, entry_id, event, published_at
FROM ledger.idempotency_keys
WHERE account_id = $1 AND idempotency_key = $2
FOR UPDATE
"""

MARK_PUBLISHED = """
UPDATE ledger.idempotency_keys SET published_at = now()
WHERE account_id = $1 AND idempotency_key = $2
"""

KEY_CLAIMED = """
SELECT EXISTS (
    SELECT 1 FROM ledger.idempotency_keys WHERE account_id = $1 AND idempotency_key = $2
)
"""

FLOWS = "SELECT inflow, outflow FROM ledger.balances WHERE account_id = $1"

# SKIP LOCKED: a claim a request is publishing right now (its row is locked) is left to it,
# and two API processes sweeping at once never take the same claim.
LOCK_UNPUBLISHED = """
SELECT account_id, idempotency_key, event
FROM ledger.idempotency_keys
WHERE published_at IS NULL
ORDER BY created_at
LIMIT $1
FOR UPDATE SKIP LOCKED
"""

MARK_MANY_PUBLISHED = """
UPDATE ledger.idempotency_keys AS k SET published_at = now()
FROM unnest($1::text[], $2::text[]) AS p(account_id, idempotency_key)
WHERE k.account_id = p.account_id AND k.idempotency_key = p.idempotency_key
"""

COUNTERS = "SELECT name, value FROM ledger.projector_counters"
ACCOUNTS = "SELECT count(*) FROM ledger.balances"
# Holds still holding credits: active and not past expiry (those count as expired before
# any placement sweeps them). Few rows, on the partial index of active holds.
ACTIVE_HOLDS = """
SELECT count(*) AS holds, coalesce(sum(credits), 0)::bigint AS credits
FROM holds.holds WHERE status = 'active' AND expires_at > now()
"""

# The operator overview (GET /v1/admin/overview): small reads, each on an index or on a
# table that stays small (offsets, counters, conflicts, rejected entries).
ACCOUNT_COUNTS = """
SELECT count(*) AS total, count(*) FILTER (WHERE status = 'exhausted') AS exhausted
FROM ledger.balances
"""

DAY_TOTALS = """
SELECT coalesce(sum(requests), 0)::bigint AS requests, coalesce(sum(tokens), 0)::bigint AS tokens,
       coalesce(sum(credits), 0)::bigint AS credits
FROM ledger.usage_daily WHERE day = $1::date
"""

TOP_SPENDERS = """
SELECT u.account_id, sum(u.requests)::bigint AS requests, sum(u.tokens)::bigint AS tokens,
       sum(u.credits)::bigint AS credits, b.balance, b.status
FROM ledger.usage_daily u JOIN ledger.balances b USING (account_id)
WHERE u.day = $1::date
GROUP BY u.account_id, b.balance, b.status
ORDER BY credits DESC, u.account_id
LIMIT $2
"""

APPLIED_OFFSETS = "SELECT partition, next_offset FROM ledger.applied_offsets WHERE topic = $1"

LATEST_REJECTED = """
SELECT topic, source_partition AS partition, source_offset AS offset, reason,
       left(payload, $2) AS payload, left(error, $2) AS error, rejected_at
FROM ledger.rejected_entries ORDER BY rejected_at DESC, source_offset DESC LIMIT $1
"""

LATEST_CONFLICTS = """
SELECT entry_id, account_id, source_partition AS partition, source_offset AS offset, detected_at
FROM ledger.conflicts ORDER BY detected_at DESC, entry_id LIMIT $1
"""

DailyGroupBy = Literal["model", "day"]
GroupBy = Literal[DailyGroupBy, "hour"]


async def ping(conn: asyncpg.Connection) -> None:
    await conn.fetchval("SELECT 1")


async def balance(conn: asyncpg.Connection, account_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(BALANCE, account_id)
    return dict(row) if row is not None else None


async def account_exists(conn: asyncpg.Connection, account_id: str) -> bool:
    return bool(await conn.fetchval(ACCOUNT_EXISTS, account_id))


async def entries(
    conn: asyncpg.Connection, account_id: str, before_seq: int | None, limit: int
) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(ENTRIES, account_id, before_seq, limit)]


async def usage(
    conn: asyncpg.Connection,
    account_id: str,
    first: date | None,
    end: date | None,
    by: DailyGroupBy,
) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(USAGE[by], account_id, first, end)]


async def usage_by_hour(
    conn: asyncpg.Connection, account_id: str, first: datetime, end: datetime | None
) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(USAGE_BY_HOUR, account_id, first, end)]


async def claim_key(
    conn: asyncpg.Connection, account_id: str, key: str, digest: str, entry_id: UUID, event: str
) -> None:
    await conn.execute(CLAIM_KEY, account_id, key, digest, entry_id, event)


async def lock_key(conn: asyncpg.Connection, account_id: str, key: str) -> dict[str, Any]:
    row = await conn.fetchrow(LOCK_KEY, account_id, key)
    # The claim row is never deleted, so it exists once claim_key has run.
    assert row is not None, "idempotency key vanished after it was claimed"
    return dict(row)


async def mark_published(conn: asyncpg.Connection, account_id: str, key: str) -> None:
    await conn.execute(MARK_PUBLISHED, account_id, key)


async def key_claimed(conn: asyncpg.Connection, account_id: str, key: str) -> bool:
    return bool(await conn.fetchval(KEY_CLAIMED, account_id, key))


async def flows(conn: asyncpg.Connection, account_id: str) -> tuple[int, int] | None:
    """The account's projected (inflow, outflow), which the balance limit bounds; None
    before its first entry (or the projector's tables) exists."""
    try:
        async with conn.transaction():  # a savepoint: a missing table must not end the caller's
            row = await conn.fetchrow(FLOWS, account_id)
    except asyncpg.UndefinedTableError:
        return None
    return (row["inflow"], row["outflow"]) if row is not None else None


async def lock_unpublished(conn: asyncpg.Connection, limit: int) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(LOCK_UNPUBLISHED, limit)]


async def mark_many_published(conn: asyncpg.Connection, claims: list[tuple[str, str]]) -> None:
    accounts, keys = [a for a, _ in claims], [k for _, k in claims]
    await conn.execute(MARK_MANY_PUBLISHED, accounts, keys)


async def projector_counters(conn: asyncpg.Connection) -> tuple[dict[str, int], int]:
    counters = {r["name"]: int(r["value"]) for r in await conn.fetch(COUNTERS)}
    return counters, int(await conn.fetchval(ACCOUNTS))


async def active_holds(conn: asyncpg.Connection) -> tuple[int, int]:
    """How many holds hold credits now, and how many credits they hold."""
    row = await conn.fetchrow(ACTIVE_HOLDS)
    return int(row["holds"]), int(row["credits"])


async def account_counts(conn: asyncpg.Connection) -> dict[str, Any]:
    return dict(await conn.fetchrow(ACCOUNT_COUNTS))


async def day_totals(conn: asyncpg.Connection, day: date) -> dict[str, Any]:
    return dict(await conn.fetchrow(DAY_TOTALS, day))


async def top_spenders(conn: asyncpg.Connection, day: date, limit: int) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(TOP_SPENDERS, day, limit)]


async def applied_offsets(conn: asyncpg.Connection, topic: str) -> dict[int, int]:
    return {r["partition"]: r["next_offset"] for r in await conn.fetch(APPLIED_OFFSETS, topic)}


async def latest_rejected(
    conn: asyncpg.Connection, limit: int, max_chars: int
) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(LATEST_REJECTED, limit, max_chars)]


async def latest_conflicts(conn: asyncpg.Connection, limit: int) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(LATEST_CONFLICTS, limit)]
