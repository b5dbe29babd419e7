"""The time rule pricing and POST /v1/usage share (services/pricing/admission.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.pricing.admission import MAX_AHEAD, judge_time, received_at

pytestmark = pytest.mark.unit

ARRIVED = datetime(2026, 11, 27, 20, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@given(st.integers(0, 2**45))
def test_a_kafka_timestamp_is_that_many_milliseconds_after_the_epoch(ms: int) -> None:
    at = received_at(ms)
    assert at is not None and (at - EPOCH) // timedelta(milliseconds=1) == ms


@pytest.mark.parametrize("ms", [None, -1])
def test_a_record_without_a_timestamp_is_not_judged_by_time(ms: int | None) -> None:
    assert received_at(ms) is None
    assert judge_time(datetime(1, 1, 2, tzinfo=UTC), received_at(ms), timedelta(days=1)) is None


@given(
    st.timedeltas(min_value=timedelta(days=-500), max_value=timedelta(days=500)),
    st.integers(1, 399),
)
def test_the_verdict_follows_the_distance_from_arrival(offset: timedelta, days: int) -> None:
    window = timedelta(days=days)
    verdict = judge_time(ARRIVED + offset, ARRIVED, window)
    if offset > MAX_AHEAD:
        assert verdict is not None and verdict.code == "invalid_event"
    elif offset < -window:
        assert verdict is not None and verdict.code == "outside_dedup_window"
        assert f"{days} days" in verdict.detail
    else:
        assert verdict is None


def test_the_edges_are_inside_to_the_microsecond() -> None:
    window, tick = timedelta(days=30), timedelta(microseconds=1)
    assert judge_time(ARRIVED + MAX_AHEAD, ARRIVED, window) is None
    assert judge_time(ARRIVED - window, ARRIVED, window) is None
    assert judge_time(ARRIVED + MAX_AHEAD + tick, ARRIVED, window) is not None
    assert judge_time(ARRIVED - window - tick, ARRIVED, window) is not None
