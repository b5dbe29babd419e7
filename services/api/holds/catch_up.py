"""After `ledger restore`: the hold decisions made after the backup's instant, from holds.v1.

A backup is the hold table at one instant; holds.v1 has every decision, before and after
it. `ledger restore` reads holds.v1 to its end and, in the transaction that loads the
backup, applies what the table lacks: a placement not in it becomes an active hold (its
credits held), a release of a hold still active (or expired) releases it. Applying a
decision the table already has changes nothing, so the whole topic is read, with no
guess at which decisions came after the snapshot. What holds.v1 does not carry stays as
the sweep and the rebuild make it: an expiry (the next placement sweeps it), a settlement
(`ledger rebuild --yes` settles from the debits). A placement's request digest is not on
holds.v1: a caught-up hold keeps RESTORED_DIGEST, so a retry with its Idempotency-Key and
a body is answered 409 `idempotency_conflict`, never a second hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg
from pydantic import ValidationError

from schemas.events import HoldPlaced, HoldReleased, parse_hold_event
from services.audit.reading import BATCH_RECORDS, LogReader
from services.common.settings import Settings
from services.common.topics import Topics

RESTORED_DIGEST = "restored-from-holds.v1"

PLACE = """
WITH placed AS (
    INSERT INTO holds.holds (hold_id, account_id, idempotency_key, request_digest, credits,
                             status, expires_at, created_at)
    SELECT u.hold_id, u.account_id, u.key, $7, u.credits, 'active', u.expires_at, u.at
    FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::timestamptz[],
                $6::timestamptz[]) AS u(hold_id, account_id, key, credits, expires_at, at)
    -- Only the missing ones draw a seq (a conflicting row would draw one too): the caught-up
    -- holds list after the restored ones, in decision order, without gaps.
    WHERE NOT EXISTS (SELECT 1 FROM holds.holds h WHERE h.hold_id = u.hold_id)
    ORDER BY u.at
    ON CONFLICT DO NOTHING
    RETURNING account_id, credits
), added AS (
    INSERT INTO holds.account_holds AS a (account_id, held)
    SELECT account_id, sum(credits) FROM placed GROUP BY account_id
    ON CONFLICT (account_id) DO UPDATE SET held = a.held + EXCLUDED.held
)
SELECT count(*) FROM placed
"""

# An expired hold a release reached was released (holds.release): it held nothing any more.
RELEASE = """
WITH target AS (
    SELECT h.hold_id, h.account_id, h.credits, h.status AS was, r.at
    FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS r(hold_id, account_id, at)
    JOIN holds.holds h ON h.hold_id = r.hold_id AND h.account_id = r.account_id
    WHERE h.status IN ('active', 'expired')
), released AS (
    UPDATE holds.holds h SET status = 'released', finished_at = t.at
    FROM target t WHERE h.hold_id = t.hold_id
    RETURNING t.account_id, t.credits, t.was
), lowered AS (
    UPDATE holds.account_holds a SET held = a.held - g.credits
    FROM (SELECT account_id, sum(credits) AS credits FROM released WHERE was = 'active'
          GROUP BY account_id) g
    WHERE a.account_id = g.account_id
)
SELECT count(*) FROM released
"""


@dataclass
class Decisions:
    """holds.v1's placements and releases, one per hold (the relay may repeat an event)."""

    placed: dict[str, HoldPlaced] = field(default_factory=dict)
    released: dict[str, HoldReleased] = field(default_factory=dict)
    unreadable: int = 0


async def read_decisions(settings: Settings) -> Decisions:
    """Every placement and release on holds.v1 up to its end now."""
    topic = Topics.from_settings(settings).holds
    found = Decisions()
    async with LogReader(settings) as reader:
        ends = await reader.end_offsets(topic)
        async for batch in reader.read_range(topic, {}, ends, BATCH_RECORDS):
            for record in batch:
                try:
                    event = parse_hold_event(record.value or b"")
                except ValidationError:
                    found.unreadable += 1  # the audit lists it; nothing to apply
                    continue
                if isinstance(event, HoldPlaced):
                    found.placed.setdefault(event.hold_id, event)
                elif isinstance(event, HoldReleased):
                    found.released.setdefault(event.hold_id, event)
    return found


async def apply(conn: asyncpg.Connection, decisions: Decisions) -> tuple[int, int]:
    """Applies the decisions the table lacks; answers (holds placed, holds released).
    Call inside the transaction that loaded the hold tables."""
    placed = list(decisions.placed.values())
    added: int = await conn.fetchval(
        PLACE,
        [e.hold_id for e in placed],
        [e.account_id for e in placed],
        [e.idempotency_key for e in placed],
        [e.credits for e in placed],
        [e.expires_at for e in placed],
        [e.occurred_at for e in placed],
        RESTORED_DIGEST,
    )
    released = list(decisions.released.values())
    gone: int = await conn.fetchval(
        RELEASE,
        [e.hold_id for e in released],
        [e.account_id for e in released],
        [e.occurred_at for e in released],
    )
    return added, gone
