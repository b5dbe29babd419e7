"""Parameters of store.py's batch statements: column arrays for unnest(), and the journal's
COPY input, in the order of the statements' parameters.

A whole batch travels as one statement with a fixed text, so PostgreSQL plans it once and
nothing is ever formatted into SQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from services.alerts.crossings import Span
from services.projector.ledger import (
    DEBITS,
    BatchPlan,
    Entry,
    RejectedMessage,
    SourcedEntry,
    next_offsets,
    plan_batch,
)

Columns = tuple[list[Any], ...]
# Usage sums per (account, period, model); a period is a day or, a datetime being a date,
# the start of an hour.
UsageRows = dict[tuple[str, date, str], list[int]]


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    """A batch with its parameters computed before its transaction, so the service can
    prepare the next batch while PostgreSQL writes the current one."""

    records: Sequence[SourcedEntry | RejectedMessage]
    plan: BatchPlan
    journal: bytes  # COPY input of the journal (or of its staging table)
    # Balances and usage as if every candidate is new: true unless some were applied before.
    totals: Columns
    offsets: Columns


def prepare(records: Sequence[SourcedEntry | RejectedMessage]) -> PreparedBatch:
    plan = plan_batch(records)
    return PreparedBatch(
        records=records,
        plan=plan,
        journal=journal_copy(plan.candidates),
        totals=totals(r.entry for r in plan.candidates),
        offsets=offsets(next_offsets(records)),
    )


def totals(entries: Iterable[Entry]) -> Columns:
    """Columns of UPSERT_TOTALS $1..$20: per account its purchased, adjusted and spent sums,
    entries, latest occurred_at, inflow and outflow (ledger.flows_of); per account, day and
    model its requests, tokens and credits; the same per account, hour and model. One pass
    over the entries, because this runs for every batch, then one over the hours for the
    days; unit tests compare it with the reference fold in the tests."""
    # account -> [purchased, adjusted upwards, spent, n, at, adjusted downwards]
    balance_rows: dict[str, list[Any]] = {}
    # (account, hour number, model) -> [requests, tokens, credits]; an int hashes far faster
    # than an aware datetime, and becomes the hour's start once per row, for the columns.
    hourly_rows: dict[tuple[str, int, str], list[int]] = {}
    for entry in entries:
        account, at, credits = entry.account_id, entry.occurred_at, entry.credits
        row = balance_rows.get(account)
        if row is None:
            row = balance_rows[account] = [0, 0, 0, 0, at, 0]
        elif at > row[4]:
            row[4] = at
        if credits < 0:  # only an adjustment can be negative
            row[5] -= credits
        else:
            row[_COLUMN[entry.type]] += credits
        row[3] += 1
        if isinstance(entry, DEBITS):
            hourly_row = hourly_rows.get(key := (account, (at - _EPOCH) // _HOUR, entry.model))
            if hourly_row is None:
                hourly_row = hourly_rows[key] = [0, 0, 0]
            hourly_row[0] += 1
            hourly_row[1] += entry.billable_tokens
            hourly_row[2] += credits
    daily_rows: dict[tuple[str, int, str], list[int]] = {}
    for (account, hour, model), sums in hourly_rows.items():
        daily_row = daily_rows.get(key := (account, hour // 24, model))
        if daily_row is None:
            daily_rows[key] = sums.copy()
        else:
            daily_row[0] += sums[0]
            daily_row[1] += sums[1]
            daily_row[2] += sums[2]
    days: UsageRows = {(a, _day(n), m): sums for (a, n, m), sums in daily_rows.items()}
    hours: UsageRows = {(a, _hour_start(n), m): sums for (a, n, m), sums in hourly_rows.items()}
    b = list(balance_rows.values())
    return (
        list(balance_rows), [r[0] for r in b], [r[1] - r[5] for r in b], [r[2] for r in b],
        [r[3] for r in b], [r[4] for r in b],
        [r[0] + r[1] for r in b], [r[2] + r[5] for r in b],
        *_usage_columns(days), *_usage_columns(hours),
    )  # fmt: skip


# Hour n of `totals` starts n hours after the epoch, UTC (ledger.usage_hour of its entries);
# day n (hour // 24) is n days after it (ledger.usage_day). Integer arithmetic on aware
# datetimes: exact for any instant, whatever its offset.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HOUR = timedelta(hours=1)
_EPOCH_ORDINAL = _EPOCH.toordinal()


def _hour_start(number: int) -> datetime:
    return _EPOCH + number * _HOUR


def _day(number: int) -> date:
    return date.fromordinal(_EPOCH_ORDINAL + number)


def _usage_columns(rows: UsageRows) -> Columns:
    keys, sums = list(rows), list(rows.values())
    return (
        [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys],
        [r[0] for r in sums], [r[1] for r in sums], [r[2] for r in sums],
    )  # fmt: skip


def spans(totals: Columns) -> dict[str, Span]:
    """services.alerts.crossings.spans of the entries `totals` sums: per account its
    outflow (the falls), inflow (the rises) and entries."""
    accounts, entries, inflow, outflow = totals[0], totals[4], totals[6], totals[7]
    return {
        account: Span(falls, rises, n)
        for account, falls, rises, n in zip(accounts, outflow, inflow, entries, strict=True)
    }


# Where each kind adds up in a balances row of `totals` (credits >= 0).
_COLUMN = {"credits.granted": 0, "credits.adjusted": 1, "credits.debited": 2}


def journal_copy(rows: Sequence[SourcedEntry]) -> bytes:
    """The COPY input (text format) of the journal or its staging table, one line per entry
    in log order; its columns are store.JOURNAL_COPY_COLUMNS. COPY costs PostgreSQL about
    half the CPU of parsing the same rows out of one JSON document."""
    return "".join(map(journal_line, rows)).encode()


def journal_line(r: SourcedEntry) -> str:
    """One COPY line of journal_copy, from the entry's fields by name."""
    e = r.entry
    # A JSON text holds a backslash, tab, newline or CR of a string only as an escape, with
    # a backslash: without one in the bytes, no text field needs COPY's escaping.
    text = copy_text if b"\\" in r.raw else _as_is
    if isinstance(e, DEBITS):
        tail = (
            f"debited\t-{e.credits}\t{text(e.model)}\t{text(e.tier)}\t{e.multiplier}\t"
            f"{e.billable_tokens}\t{text(e.price_version)}\t{text(e.usage_event_id)}\t"
            f"\\N\t\\N\t{e.occurred_at.isoformat()}\t{e.priced_at.isoformat()}"
        )
    else:
        tail = (
            f"{e.type[8:]}\t{e.credits}\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t"
            f"{text(e.reason)}\t{text(e.reference)}\t{e.occurred_at.isoformat()}\t\\N"
        )  # e.type[8:]: "credits.granted" -> "granted", the journal's kind
    return f"{e.entry_id}\t{text(e.account_id)}\t{tail}\t{r.digest}\t{r.partition}\t{r.offset}\n"


# What COPY's text format reads as syntax inside a field; NUL never gets here (read_message).
_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _as_is(value: str) -> str:
    return value


def copy_text(value: str) -> str:
    """A text field for COPY's text format: backslash, tab, newline and CR escaped."""
    return value if _COPY_SPECIAL.search(value) is None else value.translate(_COPY_ESCAPES)


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
    """Columns of INSERT_REJECTED ($2..$7)."""
    return (
        [r.partition for r in rows],
        [r.offset for r in rows],
        [printable(r.raw) for r in rows],
        [r.raw for r in rows],
        [printable(r.error.encode()) for r in rows],
        [r.reason for r in rows],
    )


def offsets(next_offsets: Mapping[int, int]) -> Columns:
    """Columns of UPSERT_TOTALS $22..$23."""
    return list(next_offsets), list(next_offsets.values())
