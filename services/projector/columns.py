"""Column arrays for store.py's unnest() statements, in the order of their parameters.

One array per column lets a whole batch travel as a single statement with a fixed text,
so PostgreSQL plans it once and nothing is ever formatted into SQL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any
from uuid import UUID

from schemas.events import CreditsAdjusted, CreditsDebited, CreditsGranted
from services.projector.ledger import (
    AccountDelta,
    RejectedMessage,
    SourcedEntry,
    UsageKey,
    UsageTotals,
)

Columns = tuple[list[Any], ...]


def journal(rows: Sequence[SourcedEntry]) -> Columns:
    """Columns of INSERT_JOURNAL ($1..$17); credits are signed (debits negative)."""
    entry_id: list[UUID] = []
    account_id: list[str] = []
    kind: list[str] = []
    credits: list[int] = []
    model: list[str | None] = []
    tier: list[str | None] = []
    multiplier: list[str | None] = []  # as text: asyncpg encodes Decimal slowly
    tokens: list[int | None] = []
    price_version: list[str | None] = []
    usage_event_id: list[str | None] = []
    reason: list[str | None] = []
    reference: list[str | None] = []
    occurred_at: list[datetime] = []
    priced_at: list[datetime | None] = []
    for row in rows:
        e = row.entry
        entry_id.append(e.entry_id)
        account_id.append(e.account_id)
        occurred_at.append(e.occurred_at)
        if isinstance(e, CreditsDebited):
            kind.append("debited")
            credits.append(-e.credits)
            model.append(e.model)
            tier.append(e.tier)
            multiplier.append(str(e.multiplier))
            tokens.append(e.billable_tokens)
            price_version.append(e.price_version)
            usage_event_id.append(e.usage_event_id)
            reason.append(None)
            reference.append(None)
            priced_at.append(e.priced_at)
        else:
            _append_credit(e, kind, credits, reason, reference)
            for column in (model, tier, multiplier, tokens, price_version, usage_event_id):
                column.append(None)
            priced_at.append(None)
    return (
        entry_id, account_id, kind, credits, model, tier, multiplier, tokens, price_version,
        usage_event_id, reason, reference, occurred_at, priced_at,
        [r.digest for r in rows], [r.partition for r in rows], [r.offset for r in rows],
    )  # fmt: skip


def _append_credit(
    e: CreditsGranted | CreditsAdjusted,
    kind: list[str],
    credits: list[int],
    reason: list[str | None],
    reference: list[str | None],
) -> None:
    kind.append("granted" if isinstance(e, CreditsGranted) else "adjusted")
    credits.append(e.credits)
    reason.append(e.reason)
    reference.append(e.reference)


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
