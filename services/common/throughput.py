"""A service's progress over one reporting window, as one log line: records per second,
batch sizes, named counts and time spent per stage. Pricing and the projector both log it."""

from __future__ import annotations

from dataclasses import dataclass, field

REPORT_EVERY_S = 5.0


@dataclass(slots=True)
class Throughput:
    service: str  # "pricing", "projector": the line's first word
    unit: str  # what a record is: "events", "entries"
    started: float  # monotonic seconds
    names: tuple[str, ...] = ()  # the counts shown, in order, zero included
    records: int = 0
    batches: int = 0
    largest: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # stage -> seconds spent

    def __post_init__(self) -> None:
        self.reset(self.started)

    def reset(self, now: float) -> None:
        self.started = now
        self.records = self.batches = self.largest = 0
        self.counts = dict.fromkeys(self.names, 0)
        self.seconds = {}

    def add(self, size: int, **counts: int) -> None:
        """One batch of `size` records and what became of them."""
        self.records += size
        self.batches += 1
        self.largest = max(self.largest, size)
        for name, n in counts.items():
            self.counts[name] = self.counts.get(name, 0) + n

    def spend(self, **seconds: float) -> None:
        for stage, s in seconds.items():
            self.seconds[stage] = self.seconds.get(stage, 0.0) + s

    def due(self, now: float) -> bool:
        return now - self.started >= REPORT_EVERY_S

    def line(self, now: float, *more: str) -> str:
        elapsed = max(now - self.started, 1e-9)
        mean = self.records // self.batches if self.batches else 0
        parts = [
            f"{self.service}: {self.records / elapsed:,.0f} {self.unit}/s over {elapsed:.1f}s",
            f"{self.batches} batches (mean {mean}, max {self.largest})",
        ]
        if self.counts:
            parts.append(", ".join(f"{name} {n}" for name, n in self.counts.items()))
        if self.seconds:
            parts.append(", ".join(f"{stage} {s:.1f}s" for stage, s in self.seconds.items()))
        return "; ".join([*parts, *more])
