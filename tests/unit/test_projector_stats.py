"""The projector's progress line (services/projector/stats.py)."""

from __future__ import annotations

import pytest

from services.projector.stats import Window
from services.projector.store import ApplyResult

pytestmark = pytest.mark.unit


def test_the_window_reports_rate_batch_sizes_and_counts_then_resets() -> None:
    window = Window(started=100.0)
    window.add(10_000, ApplyResult(applied=9_990, duplicates=8, conflicts=1, rejected=1))
    window.add(2_000, ApplyResult(applied=2_000, duplicates=0, conflicts=0))
    line = window.line(104.0)
    assert "3,000 entries/s over 4.0s" in line
    assert "2 batches (mean 6000, max 10000)" in line
    assert "applied 11990, duplicates 8, conflicts 1, rejected 1" in line
    window.reset(104.0)
    assert "0 entries/s" in window.line(105.0) and "0 batches" in window.line(105.0)
