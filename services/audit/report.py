"""The audit's report: one JSON document or readable lines. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.audit.figures import Difference
from services.common.progress import events_per_second

# The text report names this many differences; the counts and the JSON cover them all.
LISTED = 200


@dataclass(frozen=True, slots=True)
class Conflict:
    entry_id: str
    account_id: str
    partition: int
    offset: int
    applied_credits: str | None
    conflicting_credits: str | None
    detected_at: str


@dataclass(frozen=True, slots=True)
class Rejection:
    """A ledger.v1 message the projector stored in the rejected entries instead of applying."""

    partition: int
    offset: int
    reason: str
    error: str
    rejected_at: str


@dataclass
class AuditReport:
    cut: dict[int, int]
    entries_read: int = 0
    accounts: int = 0
    differences: list[Difference] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    elapsed: float = 0.0
    shadow_kept: str | None = None

    @property
    def equal(self) -> bool:
        return not self.differences

    def entries_per_second(self) -> float:
        return events_per_second(self.entries_read, self.elapsed)

    def document(self) -> dict[str, Any]:
        return {
            "equal": self.equal,
            "cut": {str(p): o for p, o in sorted(self.cut.items())},
            "entries_read": self.entries_read,
            "accounts": self.accounts,
            "differences": [
                {
                    "check": d.check,
                    "account_id": d.account_id,
                    "field": d.field,
                    "live": d.live,
                    "expected": d.expected,
                }
                for d in self.differences
            ],
            "conflicts": [vars_of(c) for c in self.conflicts],
            "rejected": [vars_of(r) for r in self.rejected],
            "elapsed_s": round(self.elapsed, 3),
            "entries_per_s": round(self.entries_per_second()),
            "shadow_kept": self.shadow_kept,
        }

    def lines(self) -> str:
        text = [f"  {d.check}: {d.line()}" for d in self.differences[:LISTED]]
        if len(self.differences) > LISTED:
            text.append(f"  ... and {len(self.differences) - LISTED:,} more (see --json)")
        text += [
            f"  conflict (not applied, not a difference): entry {c.entry_id} account "
            f"{c.account_id} at partition {c.partition} offset {c.offset}: credits "
            f"{c.conflicting_credits} vs applied {c.applied_credits}"
            for c in self.conflicts
        ]
        text += [
            f"  rejected (not applied, not a difference): partition {r.partition} offset "
            f"{r.offset}: {r.reason}: {r.error[:200]}"
            for r in self.rejected[:LISTED]
        ]
        if len(self.rejected) > LISTED:
            text.append(f"  ... and {len(self.rejected) - LISTED:,} more rejected (see --json)")
        verdict = "live projection equals the log" if self.equal else "DIFFERENCES FOUND"
        text.append(
            f"audit: {verdict}; entries read {self.entries_read:,}, accounts "
            f"{self.accounts:,}, differences {len(self.differences):,}, conflicts "
            f"{len(self.conflicts):,}, rejected {len(self.rejected):,}, elapsed "
            f"{self.elapsed:.2f} s, {self.entries_per_second():,.0f} entries/s"
        )
        if self.shadow_kept:
            text.append(f"  the shadow projection is kept in schema {self.shadow_kept}")
        return "\n".join(text)


def vars_of(item: Conflict | Rejection) -> dict[str, Any]:
    return {name: getattr(item, name) for name in item.__slots__}
