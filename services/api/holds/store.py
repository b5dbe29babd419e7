"""Every SQL statement of the holds routes. The decisions are functions of the API's
migration 002_holds.sql (services/api/migrations/), so each costs one round trip."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

PLACE = "SELECT * FROM holds.place($1, $2, $3, $4, $5)"
PLACE_MANY = "SELECT * FROM holds.place_many($1, $2, $3, $4, $5)"
RELEASE = "SELECT outcome FROM holds.release($1, $2)"

# Newest first, by seq; `status` is the status now (an active hold past expires_at that no
# placement swept yet is shown as expired).
LIST = """
SELECT hold_id, credits, status, settled_credits, expires_at, created_at, seq
FROM (
    SELECT h.hold_id, h.credits, h.settled_credits, h.expires_at, h.created_at, h.seq,
           CASE WHEN h.status = 'active' AND h.expires_at <= now() THEN 'expired'
                ELSE h.status END AS status
    FROM holds.holds h
    WHERE h.account_id = $1 AND h.seq < coalesce($2::bigint, 9223372036854775807)
) listed
WHERE $3::text IS NULL OR status = $3::text
ORDER BY seq DESC
LIMIT $4
"""

# The relay's statements. One relay at a time (an advisory lock), so holds.v1 gets the
# decisions in the order they were made.
RELAY_LOCK = "SELECT pg_try_advisory_xact_lock(hashtext('ledger-holds-relay'))"
PENDING = """
SELECT seq, type, hold_id, account_id, credits, available, idempotency_key, expires_at,
       occurred_at
FROM holds.outbox ORDER BY seq LIMIT $1
"""
PUBLISHED = "DELETE FROM holds.outbox WHERE seq = ANY($1::bigint[])"


async def place(
    conn: asyncpg.Connection, account_id: str, key: str, digest: str, credits: int, ttl: int
) -> dict[str, Any]:
    row = await conn.fetchrow(PLACE, account_id, key, digest, credits, ttl)
    assert row is not None  # the function always answers one row
    return dict(row)


async def place_many(
    conn: asyncpg.Connection, columns: Sequence[list[Any]]
) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(PLACE_MANY, *columns)]


async def release(conn: asyncpg.Connection, account_id: str, hold_id: str) -> str:
    outcome: str = await conn.fetchval(RELEASE, account_id, hold_id)
    return outcome


async def list_holds(
    conn: asyncpg.Connection,
    account_id: str,
    before_seq: int | None,
    status: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(LIST, account_id, before_seq, status, limit)]
