"""Running figures for the periodic log line: events/s, batch sizes, rejections. Pure."""

from __future__ import annotations

from dataclasses import dataclass

REPORT_EVERY_S = 5.0


@dataclass
class Throughput:
    started: float  # monotonic seconds
    events: int = 0
    batches: int = 0
    largest_batch: int = 0
    rejections: int = 0
    total_events: int = 0
    total_rejections: int = 0
    pricing_s: float = 0.0  # spent pricing, on this process's CPU
    committing_s: float = 0.0  # time waiting for the broker to take and commit a batch

    def record(self, size: int, rejections: int, pricing_s: float, committing_s: float) -> None:
        self.pricing_s += pricing_s
        self.committing_s += committing_s
        self.events += size
        self.batches += 1
        self.largest_batch = max(self.largest_batch, size)
        self.rejections += rejections
        self.total_events += size
        self.total_rejections += rejections

    def report(self, now: float, lag: int | None) -> str | None:
        """A log line once REPORT_EVERY_S has passed since the last one; None before that."""
        elapsed = now - self.started
        if elapsed < REPORT_EVERY_S:
            return None
        mean = self.events / self.batches if self.batches else 0.0
        line = (
            f"pricing: {self.events / elapsed:,.0f} events/s over {elapsed:.1f} s; "
            f"{self.batches} batches (mean {mean:,.0f}, max {self.largest_batch:,}); "
            f"pricing {self.pricing_s:.1f} s, committing {self.committing_s:.1f} s; "
            f"rejections {self.rejections} (total {self.total_rejections}); "
            f"priced since start {self.total_events:,}; "
            f"lag {'unknown' if lag is None else f'{lag:,}'}"
        )
        self.started = now
        self.events = self.batches = self.largest_batch = self.rejections = 0
        self.pricing_s = self.committing_s = 0.0
        return line
