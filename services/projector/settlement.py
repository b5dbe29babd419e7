"""Settling holds: a debit that carries a hold_id settles that hold, in the transaction that
applies the debit (docs/contracts.md, Holds).

The hold tables live in the `holds` schema, apart from the projection schemas, because a
rebuild swaps the projection while hold decisions must stay (the API owns them:
services/api/migrations/002_holds.sql).
Each debit is classified against its hold and counted in projector_counters:

- `hold_settled`: the hold was active and the usage happened before it expired; the hold
  is now settled by this entry (a replay of the same entry, in a rebuild or an audit,
  counts it again and changes nothing);
- `hold_overruns`: of those, the debits larger than their hold (applied in full);
- `hold_expired`, `hold_released`, `hold_unknown`: the debit is applied like any other;
- `hold_settled_twice`: another entry settled the hold already.

Only the first application of an entry settles anything: duplicates never get here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import asyncpg

from services.projector.ledger import DEBITS, SourcedEntry

COUNTERS = (
    "hold_settled",
    "hold_overruns",
    "hold_expired",
    "hold_released",
    "hold_unknown",
    "hold_settled_twice",
)

# Hold rows are locked in hold_id order, as the API's expiry sweep locks them: no deadlock.
SETTLE = """
WITH debit AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[], $4::bigint[], $5::timestamptz[])
        WITH ORDINALITY AS d(hold_id, account_id, entry_id, credits, occurred_at, ord)
), target AS (
    -- One index probe per hold, in hold_id order (a hash join would read the whole
    -- table), each row locked as it is found.
    SELECT t.*
    FROM (SELECT DISTINCT hold_id FROM debit ORDER BY hold_id) wanted
    CROSS JOIN LATERAL (
        SELECT h.ctid AS row_id, h.hold_id, h.account_id, h.credits, h.status, h.expires_at,
               h.settled_entry_id
        FROM holds.holds h WHERE h.hold_id = wanted.hold_id
        FOR UPDATE
    ) t
), decided AS (
    SELECT d.hold_id, d.entry_id, d.credits, t.credits AS held, t.row_id,
        CASE
            WHEN t.hold_id IS NULL OR t.account_id <> d.account_id THEN 'hold_unknown'
            WHEN t.settled_entry_id = d.entry_id THEN 'settled_before'
            WHEN t.status = 'released' THEN 'hold_released'
            WHEN t.status = 'expired' THEN 'hold_expired'
            WHEN t.status = 'settled'
                 OR row_number() OVER (PARTITION BY d.hold_id ORDER BY d.ord) > 1
                THEN 'hold_settled_twice'
            WHEN d.occurred_at >= t.expires_at THEN 'hold_expired'
            ELSE 'settle'
        END AS outcome
    FROM debit d LEFT JOIN target t ON t.hold_id = d.hold_id
), settled AS (
    UPDATE holds.holds h
    SET status = 'settled', settled_credits = d.credits, settled_entry_id = d.entry_id,
        finished_at = now()
    FROM decided d
    -- By the rows' addresses (locked above, so they stay put): no scan of the table.
    WHERE h.ctid = ANY(ARRAY(SELECT row_id FROM decided WHERE outcome = 'settle'))
      AND d.outcome = 'settle' AND h.hold_id = d.hold_id
    RETURNING h.account_id, h.credits
), settlements AS (
    INSERT INTO holds.account_settlements AS s (account_id, settled)
    SELECT account_id, sum(credits) FROM settled GROUP BY account_id
    ON CONFLICT (account_id) DO UPDATE SET settled = s.settled + EXCLUDED.settled
), counted AS (
    SELECT CASE WHEN outcome IN ('settle', 'settled_before') THEN 'hold_settled'
                ELSE outcome END AS name,
           count(*) AS n
    FROM decided GROUP BY 1
    UNION ALL
    SELECT 'hold_overruns', count(*) FROM decided
    WHERE outcome IN ('settle', 'settled_before') AND credits > held
)
INSERT INTO projector_counters (name, value)
SELECT name, n FROM counted WHERE n > 0
ON CONFLICT (name) DO UPDATE SET value = projector_counters.value + EXCLUDED.value
"""


def hold_debits(applied: Iterable[SourcedEntry]) -> tuple[list[Any], ...] | None:
    """SETTLE's parameters for the applied debits that carry a hold_id; None without any."""
    debits = [
        r.entry for r in applied if isinstance(r.entry, DEBITS) and r.entry.hold_id is not None
    ]
    if not debits:
        return None
    return (
        [d.hold_id for d in debits],
        [d.account_id for d in debits],
        [d.entry_id for d in debits],
        [d.credits for d in debits],
        [d.occurred_at for d in debits],
    )


async def settle(conn: asyncpg.Connection, applied: Iterable[SourcedEntry]) -> None:
    """Settles the holds of the newly applied debits; call inside the apply transaction."""
    columns = hold_debits(applied)
    if columns is not None:
        await conn.execute(SETTLE, *columns)
