"""Parameters of store.py's batch statements: column arrays for unnest(), and the journal's
JSON document, in the order of the statements' parameters.

A whole batch travels as one statement with a fixed text, so PostgreSQL plans it once and
nothing is ever formatted into SQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from schemas.events import LedgerEntry
from services.projector.ledger import (
    AccountDelta,
    BatchPlan,
    RejectedMessage,
    SourcedEntry,
    UsageKey,
    UsageTotals,
    account_deltas,
    next_offsets,
    plan_batch,
    usage_rollup,
)

Columns = tuple[list[Any], ...]


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    """A batch with its parameters computed before its transaction, so the service can
    prepare the next batch while PostgreSQL writes the current one."""

    records: Sequence[SourcedEntry | RejectedMessage]
    plan: BatchPlan
    journal: str
    # Balances and usage as if every candidate is new: true unless some were applied before.
    totals: Columns
    offsets: Columns


def prepare(records: Sequence[SourcedEntry | RejectedMessage]) -> PreparedBatch:
    plan = plan_batch(records)
    return PreparedBatch(
        records=records,
        plan=plan,
        journal=journal_documents(plan.candidates),
        totals=totals(r.entry for r in plan.candidates),
        offsets=offsets(next_offsets(records)),
    )


def totals(entries: Iterable[LedgerEntry]) -> Columns:
    """Columns of UPSERT_TOTALS $1..$12."""
    applied = list(entries)
    return (*balances(account_deltas(applied)), *usage(usage_rollup(applied)))


def journal_documents(rows: Sequence[SourcedEntry]) -> str:
    """$1 of INSERT_JOURNAL: a JSON array of the entries as the schema serializes them.

    The entries' own canonical JSON (not the message bytes, which may spell values in
    forms PostgreSQL would read differently), with digest and position appended.
    """
    documents = [
        f'{r.entry.model_dump_json()[:-1]},"_digest":"{r.digest}",'
        f'"_partition":{r.partition},"_offset":{r.offset}}}'
        for r in rows
    ]
    return "[" + ",".join(documents) + "]"


def conflicts(rows: Sequence[SourcedEntry]) -> Columns:
    """Columns of INSERT_CONFLICTS ($1..$6)."""
    return (
        [r.entry.entry_id for r in rows],
        [r.digest for r in rows],
        [r.entry.account_id for r in rows],
        [r.raw.decode() for r in rows],
        [r.partition for r in rows],
        [r.offset for r in rows],
    )


def printable(raw: bytes) -> str:
    """The bytes as text PostgreSQL accepts: invalid UTF-8 and NUL become escapes."""
    return raw.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")


def rejected(rows: Sequence[RejectedMessage]) -> Columns:
    """Columns of INSERT_REJECTED ($2..$6)."""
    return (
        [r.partition for r in rows],
        [r.offset for r in rows],
        [printable(r.raw) for r in rows],
        [r.raw for r in rows],
        [printable(r.error.encode()) for r in rows],
    )


def balances(deltas: Mapping[str, AccountDelta]) -> Columns:
    """Columns of UPSERT_TOTALS $1..$6: one row per account."""
    items = list(deltas.items())
    return (
        [account for account, _ in items],
        [d.purchased for _, d in items],
        [d.adjusted for _, d in items],
        [d.spent for _, d in items],
        [d.entries for _, d in items],
        [d.updated_at for _, d in items],
    )


def usage(rollup: Mapping[UsageKey, UsageTotals]) -> Columns:
    """Columns of UPSERT_TOTALS $7..$12: one row per account, day and model."""
    items = list(rollup.items())
    days: list[date] = [k.day for k, _ in items]
    return (
        [k.account_id for k, _ in items],
        days,
        [k.model for k, _ in items],
        [t.requests for _, t in items],
        [t.tokens for _, t in items],
        [t.credits for _, t in items],
    )


def offsets(next_offsets: Mapping[int, int]) -> Columns:
    """Columns of UPSERT_TOTALS $14..$15."""
    return list(next_offsets), list(next_offsets.values())
