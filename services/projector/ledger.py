"""Ledger arithmetic: what one batch of ledger.v1 entries does to the projection.

Pure functions over plain values (no Kafka, no PostgreSQL, no event loop). store.py writes
what these functions compute; the SQL only adds the results to what is already stored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Literal
from uuid import UUID

from pydantic import ValidationError

from schemas.events import CreditsDebited, CreditsGranted, LedgerEntry
from schemas.events import parse_ledger_entry as parse_entry

Kind = Literal["debited", "granted", "adjusted"]
Status = Literal["active", "exhausted"]

# pricing re-stamps priced_at when it re-prices a re-sent usage event; the debit is the same.
DIGEST_EXCLUDES = frozenset({"priced_at"})


def content_digest(entry: LedgerEntry) -> str:
    """sha256 of the entry's canonical JSON without priced_at (field order is the schema's)."""
    canonical = entry.model_dump_json(exclude=set(DIGEST_EXCLUDES))
    return hashlib.sha256(canonical.encode()).hexdigest()


def digest_of_canonical(entry: LedgerEntry, canonical: str) -> str:
    """content_digest(entry) from `canonical`, the entry's model_dump_json(), which the hot
    path needs anyway: one serialization per entry instead of two.

    priced_at is the last field of a debit, so dropping it leaves what the excluding dump
    writes. Inside a JSON string every quote is escaped, so the last `,"priced_at":` is
    the field itself.
    """
    if isinstance(entry, CreditsDebited):
        canonical = canonical[: canonical.rindex(',"priced_at":')] + "}"
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class SourcedEntry:
    """A parsed ledger entry, the bytes it came from and where it sits in ledger.v1."""

    entry: LedgerEntry
    raw: bytes
    partition: int
    offset: int
    digest: str = field(init=False)
    # The entry's model_dump_json(): what the journal row is written from (columns.py).
    canonical: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        canonical = self.entry.model_dump_json()
        object.__setattr__(self, "canonical", canonical)
        object.__setattr__(self, "digest", digest_of_canonical(self.entry, canonical))


@dataclass(frozen=True, slots=True)
class RejectedMessage:
    """A message on ledger.v1 that is not a storable ledger entry."""

    raw: bytes
    partition: int
    offset: int
    error: str


def read_message(raw: bytes | None, partition: int, offset: int) -> SourcedEntry | RejectedMessage:
    """Parses one ledger.v1 message; anything unparseable becomes a RejectedMessage."""
    if raw is None:
        return RejectedMessage(b"", partition, offset, "message has no value")
    try:
        entry = parse_entry(raw)
    except ValidationError as error:
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        return RejectedMessage(raw, partition, offset, detail or str(error))
    # PostgreSQL text cannot hold NUL; such an entry could never be stored, so it is rejected.
    if b"\\u0000" in raw and any("\x00" in str(v) for v in entry.model_dump().values()):
        return RejectedMessage(raw, partition, offset, "a text field contains a NUL character")
    return SourcedEntry(entry, raw, partition, offset)


def kind_of(entry: LedgerEntry) -> Kind:
    if isinstance(entry, CreditsDebited):
        return "debited"
    if isinstance(entry, CreditsGranted):
        return "granted"
    return "adjusted"


def signed_credits(entry: LedgerEntry) -> int:
    """The entry's effect on the balance."""
    return -entry.credits if isinstance(entry, CreditsDebited) else entry.credits


def status_for(balance: int) -> Status:
    """Overdraft is allowed (usage already happened); an account at or below zero is exhausted.

    store.py's UPSERT_TOTALS applies the same rule to the stored balance.
    """
    return "active" if balance > 0 else "exhausted"


@dataclass(frozen=True, slots=True)
class AccountDelta:
    """What a set of entries adds to one account's balances row."""

    purchased: int = 0
    adjusted: int = 0
    spent: int = 0
    entries: int = 0
    # The latest occurred_at: balances.updated_at is event time, so a rebuild reproduces it.
    updated_at: datetime | None = None

    @property
    def balance(self) -> int:
        return self.purchased + self.adjusted - self.spent

    def __add__(self, other: AccountDelta) -> AccountDelta:
        times = [t for t in (self.updated_at, other.updated_at) if t is not None]
        return AccountDelta(
            purchased=self.purchased + other.purchased,
            adjusted=self.adjusted + other.adjusted,
            spent=self.spent + other.spent,
            entries=self.entries + other.entries,
            updated_at=max(times) if times else None,
        )


def delta_of(entry: LedgerEntry) -> AccountDelta:
    at = entry.occurred_at
    if isinstance(entry, CreditsDebited):
        return AccountDelta(spent=entry.credits, entries=1, updated_at=at)
    if isinstance(entry, CreditsGranted):
        return AccountDelta(purchased=entry.credits, entries=1, updated_at=at)
    return AccountDelta(adjusted=entry.credits, entries=1, updated_at=at)


def account_deltas(entries: Iterable[LedgerEntry]) -> dict[str, AccountDelta]:
    """The summed delta per account: one row per account for the batch's single upsert."""
    # Plain lists accumulate: a batch has 10,000 entries and this runs on the hot path.
    sums: dict[str, list[int]] = {}
    latest: dict[str, datetime] = {}
    for entry in entries:
        account = entry.account_id
        row = sums.get(account)
        if row is None:
            row = sums[account] = [0, 0, 0, 0]
            latest[account] = entry.occurred_at
        elif entry.occurred_at > latest[account]:
            latest[account] = entry.occurred_at
        row[_COLUMN[entry.type]] += entry.credits
        row[3] += 1
    return {
        account: AccountDelta(p, a, s, n, latest[account]) for account, (p, a, s, n) in sums.items()
    }


# AccountDelta's field order: purchased, adjusted, spent.
_COLUMN = {"credits.granted": 0, "credits.adjusted": 1, "credits.debited": 2}


@dataclass(frozen=True, slots=True, order=True)
class UsageKey:
    account_id: str
    day: date
    model: str


@dataclass(frozen=True, slots=True)
class UsageTotals:
    requests: int = 0
    tokens: int = 0
    credits: int = 0

    def __add__(self, other: UsageTotals) -> UsageTotals:
        return UsageTotals(
            self.requests + other.requests,
            self.tokens + other.tokens,
            self.credits + other.credits,
        )


def usage_day(at: datetime) -> date:
    return at.astimezone(UTC).date()


def usage_rollup(entries: Iterable[LedgerEntry]) -> dict[UsageKey, UsageTotals]:
    """Daily usage per account and model (UTC day of occurred_at); debits only."""
    # Plain tuples accumulate and each distinct time is converted once: the hot path.
    sums: dict[tuple[str, date, str], list[int]] = {}
    days: dict[datetime, date] = {}
    for entry in entries:
        if not isinstance(entry, CreditsDebited):
            continue
        at = entry.occurred_at
        day = days.get(at)
        if day is None:
            day = days[at] = usage_day(at)
        key = (entry.account_id, day, entry.model)
        row = sums.get(key)
        if row is None:
            row = sums[key] = [0, 0, 0]
        row[0] += 1
        row[1] += entry.billable_tokens
        row[2] += entry.credits
    return {UsageKey(*key): UsageTotals(*row) for key, row in sums.items()}


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """A batch split for the journal insert, which takes each entry_id at most once."""

    candidates: list[SourcedEntry]  # the first occurrence of each entry_id, in log order
    repeats: list[SourcedEntry]  # later occurrences of an entry_id within the batch
    rejected: list[RejectedMessage]


def plan_batch(records: Iterable[SourcedEntry | RejectedMessage]) -> BatchPlan:
    plan = BatchPlan([], [], [])
    seen: set[UUID] = set()
    for record in records:
        if isinstance(record, RejectedMessage):
            plan.rejected.append(record)
        elif record.entry.entry_id in seen:
            plan.repeats.append(record)
        else:
            seen.add(record.entry.entry_id)
            plan.candidates.append(record)
    return plan


def split_repeats(
    repeats: Sequence[SourcedEntry], applied_digests: Mapping[UUID, str]
) -> tuple[list[SourcedEntry], list[SourcedEntry]]:
    """(duplicates, conflicts) of entries whose entry_id was applied before or in the batch.

    Conflicts come once per (entry_id, digest): a repeated conflicting entry is a duplicate
    of the stored conflict.
    """
    duplicates: list[SourcedEntry] = []
    conflicts: list[SourcedEntry] = []
    seen: set[tuple[UUID, str]] = set()
    for record in repeats:
        key = (record.entry.entry_id, record.digest)
        if applied_digests[record.entry.entry_id] == record.digest or key in seen:
            duplicates.append(record)
        else:
            seen.add(key)
            conflicts.append(record)
    return duplicates, conflicts


def next_offsets(records: Iterable[SourcedEntry | RejectedMessage]) -> dict[int, int]:
    """The next offset to read per partition once these records are applied."""
    offsets: dict[int, int] = {}
    for record in records:
        offsets[record.partition] = max(offsets.get(record.partition, 0), record.offset + 1)
    return offsets


__all__ = [
    "AccountDelta",
    "BatchPlan",
    "RejectedMessage",
    "SourcedEntry",
    "UsageKey",
    "UsageTotals",
    "account_deltas",
    "content_digest",
    "delta_of",
    "digest_of_canonical",
    "kind_of",
    "next_offsets",
    "plan_batch",
    "read_message",
    "signed_credits",
    "split_repeats",
    "status_for",
    "usage_day",
    "usage_rollup",
]
