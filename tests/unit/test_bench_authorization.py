"""The authorization section's figures and targets (pure)."""

from __future__ import annotations

from benchmarks.figures import AuthorizationFigure, BenchFigures, LoadFigure
from benchmarks.http_load import Timings
from benchmarks.report import verdicts


def load(per_s: float, p99: float) -> LoadFigure:
    return LoadFigure(16, 100, 1.0, per_s, p99 / 2, p99, {201: 100})


def test_only_the_authorization_targets_count_when_it_ran_alone() -> None:
    figure = AuthorizationFigure(2, 5000, 100, {16: load(3500, 9), 64: load(3600, 30)},
                                 load(40_000, 40), 100, load(5000, 12))  # fmt: skip
    f = BenchFigures("r", 0, 2, (0.0, 0.0, 0.0), authorization=figure, sections="authorization")
    found = {v.name: v.passed for v in verdicts(f)}
    assert found == {
        "single holds/s at concurrency 16": True,
        "batched holds/s (100 per call)": True,
        "balance reads/s at concurrency 16": True,
        "single hold p99 ms at concurrency 16": True,
        "balance read p99 ms": False,
    }
    whole = BenchFigures("r", 0, 2, (0.0, 0.0, 0.0))
    # 14: the pipeline targets (with the hot account's share and the audit) and the five
    # authorization ones
    assert len(verdicts(whole)) == 14 and not any(v.passed for v in verdicts(whole)[-5:])


def test_timings_give_rates_and_percentiles() -> None:
    timings = Timings(latencies=[i / 1000 for i in range(1, 101)], seconds=2.0)
    assert timings.per_second() == 50
    assert timings.percentile_ms(0.5) == 51.0 and timings.percentile_ms(0.99) == 100.0
    assert Timings().percentile_ms(0.5) is None
