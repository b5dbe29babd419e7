"""What the audit compares, per account: pure functions over plain values.

`log_differences` puts the live projection beside the shadow rebuilt from the log;
`rejection_differences` puts the live rejected entries beside the replay's;
`identity_violations` checks the live balances against the live journal (docs/contracts.md,
Guarantees: balance = sum(granted) + sum(adjusted) - sum(debited)).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal, Protocol

from services.projector import status_for

Value = int | str | None
Check = Literal["log", "identity", "holds"]


@dataclass(frozen=True, slots=True)
class AccountFigures:
    """A balances row (None when missing) and the sums of the account's journal rows."""

    balance: int | None = None
    purchased: int | None = None
    adjusted: int | None = None
    spent: int | None = None
    entries: int | None = None
    status: str | None = None
    inflow: int | None = None  # what the balance limit bounds (docs/contracts.md, Guarantees)
    outflow: int | None = None
    journal_entries: int = 0
    journal_balance: int = 0
    journal_purchased: int = 0
    journal_adjusted: int = 0
    journal_spent: int = 0
    journal_digest: str | None = None
    usage_digest: str | None = None
    hourly_usage_digest: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> AccountFigures:
        values = {f.name: row[f.name] for f in fields(cls)}
        sums = ("journal_entries", "journal_balance", "journal_purchased", "journal_adjusted")
        for name in (*sums, "journal_spent"):
            values[name] = int(values[name] or 0)
        return cls(**values)


COMPARED = tuple(f.name for f in fields(AccountFigures) if f.name != "journal_balance")


@dataclass(frozen=True, slots=True)
class Difference:
    """`check` "log": live value vs the value rebuilt from the log; "identity": a stored
    figure vs what the account's own journal rows sum to."""

    check: Check
    account_id: str
    field: str
    live: Value
    expected: Value

    def line(self) -> str:
        source = {"log": "from the log", "identity": "from the live journal"}.get(
            self.check, "expected"
        )
        return f"{self.account_id}: {self.field} live {self.live!r}, {source} {self.expected!r}"


MISSING = AccountFigures()


def log_differences(
    live: Mapping[str, AccountFigures], shadow: Mapping[str, AccountFigures]
) -> list[Difference]:
    """Every field that differs, account by account (an account absent on one side compares
    with empty figures: no balances row, no journal rows)."""
    found = []
    for account in sorted(live.keys() | shadow.keys()):
        mine, theirs = live.get(account, MISSING), shadow.get(account, MISSING)
        for name in COMPARED:
            if getattr(mine, name) != getattr(theirs, name):
                found.append(
                    Difference("log", account, name, getattr(mine, name), getattr(theirs, name))
                )
    return found


REJECTED_ENTRIES = "(rejected entries)"


class Rejected(Protocol):
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def reason(self) -> str: ...


def rejection_differences(
    live: Sequence[Rejected], replayed: Sequence[Rejected]
) -> list[Difference]:
    """Each ledger.v1 position rejected on one side only, or for another reason: the replay
    runs the projector's own apply code, so it must reject exactly what the projector did."""
    mine = {(r.partition, r.offset): r.reason for r in live}
    theirs = {(r.partition, r.offset): r.reason for r in replayed}
    return [
        Difference("log", REJECTED_ENTRIES, f"partition {p} offset {o}", mine.get((p, o)),
                   theirs.get((p, o)))
        for p, o in sorted(mine.keys() | theirs.keys())
        if mine.get((p, o)) != theirs.get((p, o))
    ]  # fmt: skip


def identity_violations(live: Mapping[str, AccountFigures]) -> list[Difference]:
    found = []
    for account in sorted(live):
        f = live[account]
        if f.balance is None:
            found.append(Difference("identity", account, "balances row", None, "present"))
            continue
        expected: dict[str, Value] = {
            "balance": f.journal_balance,
            "purchased": f.journal_purchased,
            "adjusted": f.journal_adjusted,
            "spent": f.journal_spent,
            "entries": f.journal_entries,
            "status": status_for(f.balance),
        }
        for name, value in expected.items():
            if getattr(f, name) != value:
                found.append(Difference("identity", account, name, getattr(f, name), value))
        assert f.purchased is not None and f.adjusted is not None and f.spent is not None
        if f.balance != f.purchased + f.adjusted - f.spent:
            found.append(
                Difference(
                    "identity",
                    account,
                    "balance = purchased + adjusted - spent",
                    f.balance,
                    f.purchased + f.adjusted - f.spent,
                )
            )
    return found
