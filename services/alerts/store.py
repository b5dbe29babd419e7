"""Every SQL statement of the alerts outside the projector's transaction: subscriptions
(the API), the outbox relay (the projector process) and the delivery log (`ledger serve
webhooks`). The tables come from this package's migrations (services/alerts/migrations/):
the outbox is the live projection's (search_path; projection/001_outbox.sql), the rest
lives in schema "alerts" (001_alerts.sql).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from services.alerts.schedule import NextStep, Outcome, Status
from services.alerts.signing import new_secret
from services.common.migrations import SCHEMA_NAME

SUBSCRIPTION = "SELECT thresholds, webhook_url FROM alerts.subscriptions WHERE account_id = $1"
# The row is made first so that FOR UPDATE locks it even for a new account: two PUTs at
# once never hand out two secrets.
SUBSCRIPTION_ROW = """
INSERT INTO alerts.subscriptions (account_id) VALUES ($1) ON CONFLICT (account_id) DO NOTHING
"""
SUBSCRIPTION_FOR_UPDATE = """
SELECT webhook_url, webhook_secret FROM alerts.subscriptions WHERE account_id = $1 FOR UPDATE
"""
UPSERT_SUBSCRIPTION = """
INSERT INTO alerts.subscriptions (account_id, thresholds, webhook_url, webhook_secret)
VALUES ($1, $2, $3, $4)
ON CONFLICT (account_id) DO UPDATE SET
    thresholds = EXCLUDED.thresholds, webhook_url = EXCLUDED.webhook_url,
    webhook_secret = EXCLUDED.webhook_secret, updated_at = now()
"""

# One relay at a time (a second projector process skips its turn), oldest alerts first.
RELAY_LOCK = "SELECT pg_try_advisory_xact_lock(hashtext('ledger-alert-relay'))"
UNPUBLISHED = """
SELECT seq, account_id, event FROM alert_outbox WHERE published_at IS NULL
ORDER BY seq LIMIT $1
"""
HAS_UNPUBLISHED = "SELECT EXISTS (SELECT 1 FROM alert_outbox WHERE published_at IS NULL)"
MARK_PUBLISHED = "UPDATE alert_outbox SET published_at = now() WHERE seq = ANY($1::bigint[])"

# An alert for an account with a webhook becomes a pending delivery to the URL set now;
# the same alert again (a redelivery on alerts.v1) is already there.
ENQUEUE = """
INSERT INTO alerts.deliveries (alert_id, account_id, url, host, body, status, next_attempt_at)
SELECT a.alert_id, a.account_id, s.webhook_url,
       coalesce(lower(substring(s.webhook_url FROM '^[^:]+://([^/?#]*)')), ''), a.body,
       'pending', now()
FROM unnest($1::uuid[], $2::text[], $3::text[]) AS a(alert_id, account_id, body)
JOIN alerts.subscriptions s ON s.account_id = a.account_id AND s.webhook_url IS NOT NULL
ON CONFLICT (alert_id) DO NOTHING
"""

# Due deliveries, oldest first, at most $3 in flight per receiver counting the $2 attempts
# already in flight for the hosts in $1, and $4 in all; each is leased for $5 seconds. The
# UPDATE re-checks next_attempt_at, so two dispatchers never claim the same row.
CLAIM = """
WITH in_flight AS (
    SELECT * FROM unnest($1::text[], $2::int[]) AS f(host, attempts)
), due AS (
    SELECT alert_id FROM (
        SELECT d.alert_id, d.next_attempt_at, coalesce(f.attempts, 0) AS busy,
               row_number() OVER (PARTITION BY d.host ORDER BY d.next_attempt_at) AS place
        FROM alerts.deliveries d LEFT JOIN in_flight f ON f.host = d.host
        WHERE d.status = 'pending' AND d.next_attempt_at <= now()
    ) ranked
    WHERE busy + place <= $3 ORDER BY next_attempt_at LIMIT $4
)
UPDATE alerts.deliveries d SET next_attempt_at = now() + make_interval(secs => $5)
FROM due
WHERE d.alert_id = due.alert_id AND d.status = 'pending' AND d.next_attempt_at <= now()
RETURNING d.alert_id, d.account_id, d.url, d.host, d.body, d.attempts,
          (SELECT webhook_secret FROM alerts.subscriptions s
           WHERE s.account_id = d.account_id) AS secret
"""

RECORD_ATTEMPT = """
WITH attempt AS (
    INSERT INTO alerts.delivery_attempts (alert_id, attempt, started_at, duration_ms,
                                          status_code, error)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (alert_id, attempt) DO NOTHING
), counted AS (
    INSERT INTO alerts.counters (name, value) VALUES ($9, 1)
    ON CONFLICT (name) DO UPDATE SET value = alerts.counters.value + 1
)
UPDATE alerts.deliveries SET
    attempts = $2, last_status_code = $5, last_error = $6, status = $7,
    next_attempt_at = now() + make_interval(secs => $8::float8),
    finished_at = CASE WHEN $7 = 'pending' THEN NULL ELSE now() END
WHERE alert_id = $1
"""

# The rebuild's swap (services/audit/rebuild.py), under its lock and before the live
# journal is replaced: alerts the work schema raised for entries the live projection never
# applied (they arrived while the rebuild ran) join the live outbox, so none is lost; every
# other crossing is already there.
CARRY_ALERTS = """
INSERT INTO {live}.alert_outbox (alert_id, account_id, type, entry_id, event)
SELECT w.alert_id, w.account_id, w.type, w.entry_id, w.event FROM {work}.alert_outbox w
WHERE NOT EXISTS (SELECT 1 FROM {live}.journal j WHERE j.entry_id = w.entry_id)
ORDER BY w.seq
ON CONFLICT (alert_id) DO NOTHING
"""

LIST_DELIVERIES = """
SELECT alert_id, account_id, url, status, attempts, last_status_code, next_attempt_at
FROM alerts.deliveries
WHERE ($1::text IS NULL OR account_id = $1) AND ($2::text IS NULL OR status = $2)
ORDER BY created_at DESC, alert_id
LIMIT $3
"""
COUNTERS = "SELECT name, value FROM alerts.counters"
RAISED = "SELECT coalesce(sum(value), 0) FROM ledger.alert_counters WHERE name = 'raised'"


@dataclass(frozen=True, slots=True)
class Subscription:
    thresholds: list[int]
    webhook_url: str | None
    webhook_secret: str | None  # only when this change created it


async def subscription(conn: asyncpg.Connection, account_id: str) -> Subscription:
    row = await conn.fetchrow(SUBSCRIPTION, account_id)
    if row is None:
        return Subscription([], None, None)
    return Subscription(list(row["thresholds"]), row["webhook_url"], None)


async def put_subscription(
    conn: asyncpg.Connection, account_id: str, thresholds: Sequence[int], url: str | None
) -> Subscription:
    """Replaces the account's thresholds and URL. A secret is made when a URL is set on an
    account without one, kept while a URL stays, and dropped with the URL."""
    ordered = sorted(set(thresholds))
    async with conn.transaction():
        await conn.execute(SUBSCRIPTION_ROW, account_id)
        kept = (await conn.fetchrow(SUBSCRIPTION_FOR_UPDATE, account_id))["webhook_secret"]
        created = new_secret() if url is not None and kept is None else None
        secret = None if url is None else kept or created
        await conn.execute(UPSERT_SUBSCRIPTION, account_id, ordered, url, secret)
    return Subscription(ordered, url, created)


async def unpublished(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record] | None:
    """The oldest unpublished alerts, or None when another relay holds the turn. Runs in
    the caller's transaction, which MARK_PUBLISHED ends."""
    if not await conn.fetchval(RELAY_LOCK):
        return None
    rows: list[asyncpg.Record] = await conn.fetch(UNPUBLISHED, limit)
    return rows


async def has_unpublished(conn: asyncpg.Connection) -> bool:
    found: bool = await conn.fetchval(HAS_UNPUBLISHED)
    return found


async def mark_published(conn: asyncpg.Connection, seqs: Sequence[int]) -> None:
    await conn.execute(MARK_PUBLISHED, list(seqs))


async def carry_alerts(conn: asyncpg.Connection, live: str, work: str) -> None:
    """See CARRY_ALERTS; the schema names are the rebuild's own, checked before quoting."""
    for name in (live, work):
        if not SCHEMA_NAME.match(name):
            raise ValueError(f"schema name {name!r} must match {SCHEMA_NAME.pattern}")
    await conn.execute(CARRY_ALERTS.format(live=f'"{live}"', work=f'"{work}"'))


async def enqueue(conn: asyncpg.Connection, alerts: Sequence[tuple[UUID, str, str]]) -> None:
    """(alert_id, account_id, body) of alerts read from alerts.v1."""
    await conn.execute(ENQUEUE, *(list(column) for column in zip(*alerts, strict=True)))


@dataclass(frozen=True, slots=True)
class Claimed:
    alert_id: UUID
    account_id: str
    url: str
    host: str
    body: str
    attempts: int  # before this one
    secret: str | None


async def claim(
    conn: asyncpg.Connection,
    in_flight: Mapping[str, int],
    per_host: int,
    limit: int,
    lease: float,
) -> list[Claimed]:
    """Leases due deliveries; `in_flight` counts the attempts running per host."""
    hosts = [h for h, n in in_flight.items() if n > 0]
    counts = [in_flight[h] for h in hosts]
    rows = await conn.fetch(CLAIM, hosts, counts, per_host, limit, lease)
    return [Claimed(**dict(r)) for r in rows]


async def record_attempt(
    conn: asyncpg.Connection,
    claimed: Claimed,
    started_at: datetime,
    duration_ms: int,
    outcome: Outcome,
    step: NextStep,
) -> None:
    counter = "retried" if step.retried else step.status
    await conn.execute(
        RECORD_ATTEMPT,
        claimed.alert_id, claimed.attempts + 1, started_at, duration_ms,
        outcome.status_code, outcome.error, step.status, step.retry_in, counter,
    )  # fmt: skip


async def deliveries(
    conn: asyncpg.Connection, account_id: str | None, status: Status | None, limit: int
) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(LIST_DELIVERIES, account_id, status, limit)]


async def counters(conn: asyncpg.Connection) -> dict[str, int]:
    """The webhooks service's counts: delivered, retried, failed."""
    return {r["name"]: r["value"] for r in await conn.fetch(COUNTERS)}


async def alerts_raised(conn: asyncpg.Connection) -> int:
    """How many alerts the live projection raised (its schema is always "ledger")."""
    raised: int = await conn.fetchval(RAISED)
    return raised
