"""The progress line of pricing and the projector (services/common/throughput.py)."""

from __future__ import annotations

import pytest

from services.common.throughput import Throughput
from services.projector.service import progress_window
from services.projector.store import ApplyResult

pytestmark = pytest.mark.unit


def test_the_window_reports_rate_batch_sizes_and_counts_then_resets() -> None:
    window = progress_window(100.0)
    window.add(10_000, **ApplyResult(applied=9_990, duplicates=8, conflicts=1, rejected=1).counts())
    window.add(2_000, **ApplyResult(applied=2_000, duplicates=0, conflicts=0).counts())
    line = window.line(104.0)
    assert "3,000 entries/s over 4.0s" in line
    assert "2 batches (mean 6000, max 10000)" in line
    assert "applied 11990, duplicates 8, conflicts 1, rejected 1" in line
    window.reset(104.0)
    assert "0 entries/s" in window.line(105.0) and "0 batches" in window.line(105.0)


def test_pricing_reports_every_few_seconds_with_its_stages() -> None:
    window = Throughput("pricing", "events", 0.0, ("rejections",))
    window.add(500, rejections=2)
    window.spend(pricing=0.25, committing=1.0)
    assert not window.due(4.9) and window.due(5.0)
    line = window.line(5.0, "lag 7")
    assert line.startswith("pricing: 100 events/s over 5.0s; 1 batches (mean 500, max 500)")
    assert "rejections 2; pricing 0.2s, committing 1.0s; lag 7" in line
