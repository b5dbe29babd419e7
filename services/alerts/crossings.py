"""Which balance alerts a run of ledger entries raises (docs/contracts.md, Events, Alerts).

Pure functions over plain values: the projector's transaction (services/alerts/projection.py)
feeds them the batch's entries in log order and each account's balance before the batch,
and stores what they return. Each entry is looked at on its own, never a batch's net
change, so the alerts are the same however the log is cut into batches.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from schemas.events import ALERT_EVENTS, AlertType, BalanceAlert

ALERT_NAMESPACE = UUID("8c1d6f0e-2b47-4c59-a3e1-5d7f9b2c4e61")


def alert_id_for(account_id: str, alert_type: AlertType, threshold: int, entry_id: UUID) -> UUID:
    """uuid5 of account, type, threshold and entry: one crossing is always one alert_id."""
    return uuid.uuid5(ALERT_NAMESPACE, f"{account_id}\n{alert_type}\n{threshold}\n{entry_id}")


@dataclass(frozen=True, slots=True)
class Movement:
    """One applied ledger entry as the alerts see it: its signed effect on the balance."""

    account_id: str
    entry_id: UUID
    credits: int
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class Crossing:
    type: AlertType
    account_id: str
    threshold: int
    balance: int
    previous_balance: int
    entry_id: UUID
    occurred_at: datetime

    @property
    def alert_id(self) -> UUID:
        return alert_id_for(self.account_id, self.type, self.threshold, self.entry_id)

    def event(self) -> BalanceAlert:
        return ALERT_EVENTS[self.type](
            alert_id=self.alert_id,
            account_id=self.account_id,
            threshold=self.threshold,
            balance=self.balance,
            previous_balance=self.previous_balance,
            entry_id=self.entry_id,
            occurred_at=self.occurred_at,
        )


def crossings_of_step(
    account_id: str,
    before: int | None,
    after: int,
    thresholds: Sequence[int],
    movement: Movement,
) -> list[Crossing]:
    """The alerts of one entry that took an account's balance from `before` to `after`.

    `before` is None for the account's first entry: a new account starts from 0 but was
    never exhausted, so its first top-up is not a recovery. `thresholds` are descending,
    so the alerts come in the order the balance passes them.
    """
    previous = 0 if before is None else before
    found: list[Crossing] = []

    def add(alert_type: AlertType, threshold: int) -> None:
        entry, at = movement.entry_id, movement.occurred_at
        found.append(Crossing(alert_type, account_id, threshold, after, previous, entry, at))

    if after < previous:
        for threshold in thresholds:
            if previous > threshold >= after:
                add("balance.low", threshold)
        if previous > 0 >= after:
            add("balance.exhausted", 0)
    elif before is not None and before <= 0 < after:
        add("balance.recovered", 0)
    return found


def crossings(
    balances: Mapping[str, int | None],
    thresholds: Mapping[str, Sequence[int]],
    movements: Iterable[Movement],
) -> list[Crossing]:
    """The alerts raised by `movements` (in log order) for the accounts in `balances`.

    `balances` holds each account's balance before the first movement (None: no entries
    yet); movements of other accounts are skipped, as the caller knows they cross nothing.
    """
    running = dict(balances)
    ordered = {a: sorted(set(ts), reverse=True) for a, ts in thresholds.items()}
    found: list[Crossing] = []
    for movement in movements:
        account = movement.account_id
        if account not in running:
            continue
        before = running[account]
        after = (0 if before is None else before) + movement.credits
        running[account] = after
        found += crossings_of_step(account, before, after, ordered.get(account, ()), movement)
    return found


@dataclass(frozen=True, slots=True)
class Span:
    """How far an account's balance can move within a batch: the sums of its decreases
    and increases, and its number of entries."""

    falls: int
    rises: int
    entries: int


def spans(effects: Iterable[tuple[str, int]]) -> dict[str, Span]:
    """Per account, from (account_id, signed credits) in any order; projection.py asks
    PostgreSQL only for accounts whose span may cross. Plain lists accumulate: this runs
    over every entry of every batch."""
    sums: dict[str, list[int]] = {}
    for account, credits in effects:
        row = sums.get(account)
        if row is None:
            row = sums[account] = [0, 0, 0]
        if credits < 0:
            row[0] -= credits
        else:
            row[1] += credits
        row[2] += 1
    return {account: Span(*row) for account, row in sums.items()}


def may_cross(before: int | None, span: Span, has_thresholds: bool) -> bool:
    """False only when no order of the span's entries can raise an alert: the balance
    stays on one side of 0 and the account has no thresholds. The SQL in
    services/alerts/projection.py applies the same rule."""
    if has_thresholds:
        return True
    if before is None:
        return span.entries > 1
    if before > 0:
        return before - span.falls <= 0
    return before + span.rises > 0
