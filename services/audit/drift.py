"""Price drift: usage re-priced with today's price book against the debits on ledger.v1.
Pure: the glue (reprice.py) reads both topics and hands over plain values.

Kinds of drift, per model and in total:
- changed: priced now and debited then, with different credits;
- unrecorded: priced now, but no debit was recorded for it;
- rejected_now: rejected by today's price book, but debited then;
- orphaned: a recorded debit whose usage event is not on usage.v1.
A usage event rejected now and never debited is no drift: the rejection matches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID


@dataclass(frozen=True, slots=True)
class Outcome:
    """A usage event's debit (credits) or rejection (credits None, code set), now or then."""

    model: str
    credits: int | None
    code: str | None = None


@dataclass
class ModelDrift:
    events: int = 0  # usage events of the model compared
    changed: int = 0
    credits_then: int = 0  # of the changed events
    credits_now: int = 0
    unrecorded: int = 0
    unrecorded_credits: int = 0
    rejected_now: int = 0
    rejected_now_credits: int = 0  # what was debited then
    orphaned: int = 0
    orphaned_credits: int = 0

    @property
    def drifting(self) -> bool:
        return bool(self.changed or self.unrecorded or self.rejected_now or self.orphaned)

    @property
    def credits_difference(self) -> int:
        """What today's book would debit minus what was debited, over every kind."""
        return (
            self.credits_now
            - self.credits_then
            + self.unrecorded_credits
            - self.rejected_now_credits
            - self.orphaned_credits
        )

    def __iadd__(self, other: ModelDrift) -> ModelDrift:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    def document(self) -> dict[str, Any]:
        return {
            **{name: getattr(self, name) for name in self.__dataclass_fields__},
            "credits_difference": self.credits_difference,
        }


@dataclass
class DriftReport:
    by_model: dict[str, ModelDrift] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def total(self) -> ModelDrift:
        total = ModelDrift()
        for drift in self.by_model.values():
            total += drift
        return total

    def model(self, name: str) -> ModelDrift:
        return self.by_model.setdefault(name, ModelDrift())


EXAMPLES = 20


def compare_outcomes(now: Mapping[UUID, Outcome], then: Mapping[UUID, Outcome]) -> DriftReport:
    """Debit by debit, by entry_id (the debit's id, derived from account and usage event_id)."""
    report = DriftReport()
    for entry_id, current in now.items():
        drift = report.model(current.model)
        drift.events += 1
        recorded = then.get(entry_id)
        kind = _classify(current, recorded, drift)
        if kind and len(report.examples) < EXAMPLES:
            report.examples.append(_example(kind, entry_id, current, recorded))
    for entry_id, recorded in then.items():
        if entry_id not in now:
            drift = report.model(recorded.model)
            drift.orphaned += 1
            drift.orphaned_credits += recorded.credits or 0
            if len(report.examples) < EXAMPLES:
                report.examples.append(_example("orphaned", entry_id, None, recorded))
    return report


def _classify(current: Outcome, recorded: Outcome | None, drift: ModelDrift) -> str | None:
    if current.credits is None:
        if recorded is None:
            return None
        drift.rejected_now += 1
        drift.rejected_now_credits += recorded.credits or 0
        return "rejected_now"
    if recorded is None:
        drift.unrecorded += 1
        drift.unrecorded_credits += current.credits
        return "unrecorded"
    if recorded.credits != current.credits:
        drift.changed += 1
        drift.credits_then += recorded.credits or 0
        drift.credits_now += current.credits
        return "changed"
    return None


def _example(
    kind: str, entry_id: UUID, current: Outcome | None, recorded: Outcome | None
) -> dict[str, Any]:
    return {
        "kind": kind,
        "entry_id": str(entry_id),
        "model": (current or recorded or Outcome("", None)).model,
        "credits_then": recorded.credits if recorded else None,
        "credits_now": current.credits if current else None,
        "rejected_now": current.code if current and current.credits is None else None,
    }
