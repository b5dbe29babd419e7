"""The audit's hold checks (docs/contracts.md, Holds): every settled hold has its debit in
the journal, each account's held credits equal its active holds, and holds.v1 agrees with
the hold table.

The table and holds.v1 are read so that neither side can run ahead of the other: holds.v1's
end offsets are taken before and after one snapshot of the tables. An event before the
first ends was committed before the snapshot, so the snapshot has its hold; a row of the
snapshot no longer in the outbox was published before the snapshot, so it is on holds.v1
before the second ends. The statements live here, beside the only code that runs them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
from pydantic import ValidationError

from schemas.events import HoldEvent, parse_hold_event
from services.audit.figures import Difference
from services.audit.reading import BATCH_RECORDS, LogReader
from services.common.settings import Settings
from services.common.topics import Topics

HOLDS_EXIST = "SELECT to_regclass('holds.holds') IS NOT NULL"
SETTLED_WITHOUT_DEBIT = """
SELECT h.account_id, h.hold_id, h.settled_credits, -j.credits AS debit
FROM holds.holds h LEFT JOIN ledger.journal j ON j.entry_id = h.settled_entry_id
WHERE h.status = 'settled'
  AND (j.entry_id IS NULL OR j.kind <> 'debited' OR j.account_id <> h.account_id
       OR -j.credits IS DISTINCT FROM h.settled_credits)
"""
HELD_MISMATCHES = """
SELECT account_id, held, active FROM (
    SELECT a.account_id, a.held - coalesce(s.settled, 0) AS held,
           coalesce((SELECT sum(h.credits) FROM holds.holds h
                     WHERE h.account_id = a.account_id AND h.status = 'active'), 0) AS active
    FROM holds.account_holds a LEFT JOIN holds.account_settlements s USING (account_id)
) counted
WHERE held <> active
"""
HOLDS = "SELECT hold_id, account_id, credits, idempotency_key, status FROM holds.holds"
PENDING = "SELECT type, hold_id FROM holds.outbox"


@dataclass(frozen=True, slots=True)
class HoldRow:
    hold_id: str
    account_id: str
    credits: int
    idempotency_key: str
    status: str


@dataclass
class Snapshot:
    rows: dict[str, HoldRow]
    pending: set[tuple[str, str]]  # (type, hold_id) still in the outbox
    differences: list[Difference]


def difference(account: str, what: str, live: Any, expected: Any) -> Difference:
    return Difference("holds", account, what, live, expected)


def table_differences(
    settled: Iterable[Mapping[str, Any]], held: Iterable[Mapping[str, Any]]
) -> list[Difference]:
    """Settled holds without their debit; accounts whose held differs from their holds."""
    found = []
    for r in settled:
        debit = "a debit of its account" if r["debit"] is None else r["debit"]
        found.append(
            difference(r["account_id"], f"hold {r['hold_id']} debit", r["settled_credits"], debit)
        )
    for r in held:
        found.append(difference(r["account_id"], "held", int(r["held"]), int(r["active"])))
    return found


def missing_events(rows: Mapping[str, HoldRow], seen: set[tuple[str, str]]) -> list[Difference]:
    """Rows whose decisions are neither on holds.v1 nor waiting in the outbox (`seen`)."""
    found = []
    for row in rows.values():
        decisions = ["hold.placed"] + (["hold.released"] if row.status == "released" else [])
        for kind in decisions:
            if (kind, row.hold_id) not in seen:
                found.append(difference(row.account_id, f"hold {row.hold_id}", "no " + kind, kind))
    return found


def disagreement(event: HoldEvent, row: HoldRow | None) -> Difference | None:
    """What is wrong with the table's row of an event on holds.v1, if anything."""
    what = f"hold {event.hold_id}"
    if event.type == "hold.refused":
        return None if row is None else difference(event.account_id, what, row.status, "refused")
    if row is None:
        return difference(event.account_id, what, "not in the table", event.type)
    if event.type == "hold.released":
        ok = row.status == "released"
        return None if ok else difference(event.account_id, what, row.status, "released")
    placed = (event.account_id, event.credits, event.idempotency_key)
    if (row.account_id, row.credits, row.idempotency_key) != placed:
        return difference(event.account_id, what, str(row), str(placed))
    return None


def log_differences(
    snapshot: Snapshot, early: Iterable[HoldEvent], late: Iterable[HoldEvent]
) -> list[Difference]:
    """`early`: events before the snapshot; `late`: every event read after it."""
    seen = {(e.type, e.hold_id) for e in late} | snapshot.pending
    found = missing_events(snapshot.rows, seen)
    for event in early:
        if (wrong := disagreement(event, snapshot.rows.get(event.hold_id))) is not None:
            found.append(wrong)
    return found


async def take_snapshot(database_url: str) -> Snapshot | None:
    conn = await asyncpg.connect(database_url)
    try:
        if not await conn.fetchval(HOLDS_EXIST):
            return None
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            differences = table_differences(
                await conn.fetch(SETTLED_WITHOUT_DEBIT), await conn.fetch(HELD_MISMATCHES)
            )
            rows = {r["hold_id"]: HoldRow(**dict(r)) for r in await conn.fetch(HOLDS)}
            pending = {(r["type"], r["hold_id"]) for r in await conn.fetch(PENDING)}
    finally:
        await conn.close()
    return Snapshot(rows, pending, differences)


async def hold_differences(settings: Settings) -> list[Difference]:
    """Every hold check's findings; none when the deployment has no hold table."""
    topic = Topics.from_settings(settings).holds
    async with LogReader(settings) as reader:
        before = await reader.end_offsets(topic)
        snapshot = await take_snapshot(settings.database_url)
        if snapshot is None:
            return []
        after = await reader.end_offsets(topic)
        early, late, unreadable = [], [], []
        async for batch in reader.read_range(topic, {}, after, BATCH_RECORDS):
            for record in batch:
                try:
                    event = parse_hold_event(record.value or b"")
                except ValidationError:
                    unreadable.append(f"holds.v1 {record.partition}:{record.offset}")
                    continue
                late.append(event)
                if record.offset < before.get(record.partition, 0):
                    early.append(event)
    found = snapshot.differences + log_differences(snapshot, early, late)
    return found + [difference("", where, "unreadable", "a hold event") for where in unreadable]
