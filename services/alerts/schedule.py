"""What an attempt's outcome does to a delivery: delivered, retried later, or failed.

Pure: the delays come from LEDGER_WEBHOOK_RETRY_SECONDS (default 5,30,300,1800,7200,21600),
so a delivery gets one first attempt and one retry per delay, then it is failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Status = Literal["pending", "delivered", "failed"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """One attempt as the receiver answered it: a status code, or an error without one."""

    status_code: int | None = None
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True, slots=True)
class NextStep:
    status: Status
    retry_in: float | None  # seconds until the next attempt; only for "pending"

    @property
    def retried(self) -> bool:
        return self.status == "pending"


def next_step(outcome: Outcome, attempts: int, delays: Sequence[float]) -> NextStep:
    """After the `attempts`-th attempt (1 for the first) ended with `outcome`."""
    if outcome.delivered:
        return NextStep("delivered", None)
    if attempts <= len(delays):
        return NextStep("pending", delays[attempts - 1])
    return NextStep("failed", None)
