"""The bounds of GET .../usage?group_by=hour: whole UTC hours, never before the last 7 days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.api.periods import HOUR_WINDOW, HourRange, InvalidPeriod, hour_range

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 1, 9, 41, 30, tzinfo=UTC)
EARLIEST = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # the hour of NOW - 7 days


def at(day: int, hour: int, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (None, None, HourRange(EARLIEST, None)),
        ("2026-11-30T19:10:00Z", None, HourRange(at(30, 19), None)),
        ("2026-11-30T19:00:00Z", "2026-11-30T21:00:00Z", HourRange(at(30, 19), at(30, 21))),
        ("2026-11-30T19:59:59Z", "2026-11-30T20:00:01Z", HourRange(at(30, 19), at(30, 21))),
        ("2026-11-30T21:10:00+02:00", None, HourRange(at(30, 19), None)),
        ("2026-11-30", "2026-12-01", HourRange(at(30, 0), at(1, 0, month=12))),
        # Earlier than the window: it starts at the window.
        ("2026-01-01", None, HourRange(EARLIEST, None)),
        ("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", HourRange(EARLIEST, at(2, 0, month=1))),
        ("9999-12-31T23:30:00Z", None, HourRange(datetime(9999, 12, 31, 23, tzinfo=UTC), None)),
        (None, "9999-12-31T23:30:00Z", HourRange(EARLIEST, None)),
    ],
)
def test_bounds_are_whole_hours_within_the_window(
    start: str | None, end: str | None, expected: HourRange
) -> None:
    assert hour_range(start, end, NOW) == expected


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2026-11-30T19:00:00", None),  # no time zone
        ("yesterday", None),
        (None, "2026-13-01"),
        ("2026-11-30T20:00:00Z", "2026-11-30T19:00:00Z"),  # from after to
        ("9" * 64, None),
    ],
)
def test_bad_bounds_are_refused(start: str | None, end: str | None) -> None:
    with pytest.raises(InvalidPeriod):
        hour_range(start, end, NOW)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)))
def test_every_range_starts_on_an_hour_no_earlier_than_the_window(moment: datetime) -> None:
    aware = moment.replace(tzinfo=UTC)
    hours = hour_range(aware.isoformat(), None, NOW)
    assert hours.first.minute == hours.first.second == hours.first.microsecond == 0
    assert hours.first >= NOW - HOUR_WINDOW - timedelta(hours=1)
    assert hours.first <= max(aware, EARLIEST)
