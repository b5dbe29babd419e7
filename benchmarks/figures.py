"""What a bench run measured: plain values, turned into the table and the JSON by report.py."""

from __future__ import annotations

from dataclasses import dataclass, field


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


@dataclass
class StageFigure:
    """One stage on its own (or the whole pipeline): events, wall seconds, events/s."""

    events: int
    seconds: float
    events_per_s: float
    # CPU seconds per 1,000 events of the stage's own process (None: not sampled).
    cpu_s_per_1k: float | None = None
    # Average cores each process (and the rest of the machine) kept busy meanwhile.
    cores_used: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, events: int, seconds: float, cpu_s: float | None = None) -> StageFigure:
        per_1k = cpu_s / events * 1000 if cpu_s is not None and events else None
        return cls(events, round(seconds, 3), round(rate(events, seconds)), _round(per_1k))


@dataclass
class FreshnessFigure:
    target_rate: int
    seconds: float
    sent: int
    achieved_rate: float
    probes: int
    probes_seen: int
    poll_interval_ms: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    # When the steady load ended: published events not yet priced / priced, not yet applied.
    # A backlog there means a stage could not keep up with the rate.
    backlog_at_end_of_load: dict[str, int] = field(default_factory=dict)
    cores_used: dict[str, float] = field(default_factory=dict)  # during the whole phase


@dataclass
class RebuildFigure:
    status: str  # "ok", "n/a" (no rebuild command yet) or "failed"
    entries: int | None = None
    seconds: float | None = None
    entries_per_s: float | None = None
    matches_live: bool | None = None
    peak_rss_mb: float | None = None
    detail: str = ""
    # What the command itself reports (without interpreter startup), when it does.
    reported_seconds: float | None = None
    reported_entries_per_s: float | None = None


@dataclass
class BaselineFigure:
    events: int
    seconds: float
    events_per_s: float
    design: str = (
        "one PostgreSQL transaction per usage event (insert a spend row, upsert the balance), "
        "priced with the same price book, one connection, synchronous commit"
    )


@dataclass
class ProcessFigure:
    """A process (or group) during the end-to-end phase."""

    cpu_s_per_1k: float | None
    cores_used: float | None
    peak_rss_mb: float | None
    note: str = ""


@dataclass
class LoadFigure:
    """Closed-loop HTTP load: `concurrency` requests in flight for `seconds`."""

    concurrency: int
    requests: int
    seconds: float
    per_s: float  # holds placed (or balances read) per second
    p50_ms: float | None
    p99_ms: float | None
    statuses: dict[int, int] = field(default_factory=dict)
    # CPU milliseconds per request, by process group (benchmarks/authorization.py): on
    # a shared machine the rate follows the share of the cores the run got, this does not.
    cpu_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class AuthorizationFigure:
    """Holds and balance reads over HTTP while the pipeline carries a steady usage load."""

    api_workers: int
    background_rate: int
    background_sent: int
    single: dict[int, LoadFigure] = field(default_factory=dict)  # by concurrency
    batched: LoadFigure | None = None
    batch_size: int = 0
    reads: LoadFigure | None = None


@dataclass
class BenchFigures:
    run_id: str
    events: int
    cpus: int
    load_before: tuple[float, float, float]
    end_to_end: StageFigure | None = None
    # End to end again on the running pipeline with every event on one account.
    hot_account: StageFigure | None = None
    hot_account_share: float | None = None  # hot_account / end_to_end events/s
    publish: StageFigure | None = None
    pricing: StageFigure | None = None
    projection: StageFigure | None = None
    freshness: FreshnessFigure | None = None
    rebuild: RebuildFigure | None = None
    audit: RebuildFigure | None = None  # `ledger audit` right after the rebuild
    baseline: BaselineFigure | None = None
    speedup_vs_baseline: float | None = None
    processes: dict[str, ProcessFigure] = field(default_factory=dict)
    checks: dict[str, object] = field(default_factory=dict)
    authorization: AuthorizationFigure | None = None
    sections: str = "all"  # or "authorization": only that section ran


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)
