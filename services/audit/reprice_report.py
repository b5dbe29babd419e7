"""The reprice report: one JSON document or a table of drift by model. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.audit.drift import DriftReport, ModelDrift
from services.common.progress import events_per_second


@dataclass
class RepriceSummary:
    versions: list[str] = field(default_factory=list)
    usage_messages: int = 0
    unparseable_usage: int = 0  # rejected as invalid JSON or event: no entry_id to compare
    ledger_debits: int = 0
    elapsed: float = 0.0

    def document(self, report: DriftReport) -> dict[str, Any]:
        return {
            "drift": report.total.drifting,
            "price_book_versions": self.versions,
            "usage_messages": self.usage_messages,
            "unparseable_usage": self.unparseable_usage,
            "ledger_debits": self.ledger_debits,
            "by_model": {m: d.document() for m, d in sorted(report.by_model.items())},
            "total": report.total.document(),
            "examples": report.examples,
            "elapsed_s": round(self.elapsed, 3),
        }

    def lines(self, report: DriftReport) -> str:
        header = (
            f"{'model':<24}{'events':>10}{'changed':>10}{'unrecorded':>12}"
            f"{'rejected':>10}{'orphaned':>10}{'credits diff':>16}"
        )
        rows = [header]
        for model, drift in sorted(report.by_model.items()):
            rows.append(_row(model, drift))
        total = report.total
        rows.append(_row("total", total))
        rate = events_per_second(self.usage_messages + self.ledger_debits, self.elapsed)
        verdict = "drift found" if total.drifting else "no drift"
        rows.append(
            f"reprice: {verdict} with price book versions {', '.join(self.versions)}; usage "
            f"messages {self.usage_messages:,} (unparseable {self.unparseable_usage:,}), "
            f"recorded debits {self.ledger_debits:,}, elapsed {self.elapsed:.2f} s, "
            f"{rate:,.0f} messages/s"
        )
        return "\n".join(rows)


def _row(model: str, d: ModelDrift) -> str:
    return (
        f"{model:<24}{d.events:>10,}{d.changed:>10,}{d.unrecorded:>12,}"
        f"{d.rejected_now:>10,}{d.orphaned:>10,}{d.credits_difference:>16,}"
    )
