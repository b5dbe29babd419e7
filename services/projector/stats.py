"""The projector's progress over a reporting window, as one log line."""

from __future__ import annotations

from dataclasses import dataclass

from services.projector.store import ApplyResult


@dataclass(slots=True)
class Window:
    started: float
    records: int = 0
    batches: int = 0
    largest: int = 0
    applied: int = 0
    duplicates: int = 0
    conflicts: int = 0
    rejected: int = 0

    def reset(self, now: float) -> None:
        self.started = now
        self.records = self.batches = self.largest = 0
        self.applied = self.duplicates = self.conflicts = self.rejected = 0

    def add(self, size: int, result: ApplyResult) -> None:
        self.records += size
        self.batches += 1
        self.largest = max(self.largest, size)
        self.applied += result.applied
        self.duplicates += result.duplicates
        self.conflicts += result.conflicts
        self.rejected += result.rejected

    def line(self, now: float) -> str:
        seconds = max(now - self.started, 1e-9)
        mean = self.records // self.batches if self.batches else 0
        return (
            f"projector: {self.records / seconds:,.0f} entries/s over {seconds:.1f}s; "
            f"{self.batches} batches (mean {mean}, max {self.largest}); "
            f"applied {self.applied}, duplicates {self.duplicates}, "
            f"conflicts {self.conflicts}, rejected {self.rejected}"
        )
