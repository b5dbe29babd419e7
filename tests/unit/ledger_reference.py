"""The ledger arithmetic spelled out entry by entry: the reference that the projector's
one-pass fold (services/projector/columns.totals) must equal. Test code only; the projector
runs columns.totals."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from schemas.events import CreditsAdjusted, CreditsDebited, CreditsGranted, LedgerEntry
from services.projector.ledger import usage_day, usage_hour

Columns = tuple[list[Any], ...]


def signed_credits(entry: LedgerEntry) -> int:
    """The entry's effect on the balance."""
    return -entry.credits if isinstance(entry, CreditsDebited) else entry.credits


@dataclass(frozen=True, slots=True)
class AccountDelta:
    """What a set of entries adds to one account's balances row."""

    purchased: int = 0
    adjusted: int = 0
    spent: int = 0
    entries: int = 0
    updated_at: datetime | None = None
    inflow: int = 0
    outflow: int = 0

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
            inflow=self.inflow + other.inflow,
            outflow=self.outflow + other.outflow,
        )


def delta_of(entry: LedgerEntry) -> AccountDelta:
    signed, credits = signed_credits(entry), entry.credits
    return AccountDelta(
        purchased=credits if isinstance(entry, CreditsGranted) else 0,
        adjusted=credits if isinstance(entry, CreditsAdjusted) else 0,
        spent=credits if isinstance(entry, CreditsDebited) else 0,
        entries=1,
        updated_at=entry.occurred_at,
        inflow=max(signed, 0),
        outflow=max(-signed, 0),
    )


def account_deltas(entries: Iterable[LedgerEntry]) -> dict[str, AccountDelta]:
    """The summed delta per account, entry by entry."""
    out: dict[str, AccountDelta] = {}
    for entry in entries:
        out[entry.account_id] = out.get(entry.account_id, AccountDelta()) + delta_of(entry)
    return out


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


def usage_rollup(entries: Iterable[LedgerEntry]) -> dict[UsageKey, UsageTotals]:
    """Daily usage per account and model (UTC day of occurred_at); debits only."""
    out: dict[UsageKey, UsageTotals] = {}
    for e in entries:
        if isinstance(e, CreditsDebited):
            key = UsageKey(e.account_id, usage_day(e.occurred_at), e.model)
            out[key] = out.get(key, UsageTotals()) + UsageTotals(1, e.billable_tokens, e.credits)
    return out


def hourly_rollup(entries: Iterable[LedgerEntry]) -> dict[UsageKey, UsageTotals]:
    """Hourly usage per account and model (the start of the UTC hour of occurred_at, in the
    key's `day`: a datetime is a date); debits only."""
    out: dict[UsageKey, UsageTotals] = {}
    for e in entries:
        if isinstance(e, CreditsDebited):
            key = UsageKey(e.account_id, usage_hour(e.occurred_at), e.model)
            out[key] = out.get(key, UsageTotals()) + UsageTotals(1, e.billable_tokens, e.credits)
    return out


def reference_totals(entries: Iterable[LedgerEntry]) -> Columns:
    """What columns.totals must give for `entries`."""
    applied = list(entries)
    return (
        *balances(account_deltas(applied)),
        *usage(usage_rollup(applied)),
        *usage(hourly_rollup(applied)),
    )


def balances(deltas: Mapping[str, AccountDelta]) -> Columns:
    items = list(deltas.items())
    return (
        [account for account, _ in items],
        [d.purchased for _, d in items],
        [d.adjusted for _, d in items],
        [d.spent for _, d in items],
        [d.entries for _, d in items],
        [d.updated_at for _, d in items],
        [d.inflow for _, d in items],
        [d.outflow for _, d in items],
    )


def usage(rollup: Mapping[UsageKey, UsageTotals]) -> Columns:
    items = list(rollup.items())
    return (
        [k.account_id for k, _ in items],
        [k.day for k, _ in items],
        [k.model for k, _ in items],
        [t.requests for _, t in items],
        [t.tokens for _, t in items],
        [t.credits for _, t in items],
    )
