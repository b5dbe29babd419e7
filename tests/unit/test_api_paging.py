"""The entries cursor and the usage period bounds: pure functions, no I/O."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.api.cursor import MAX_SEQ, InvalidCursor, decode_cursor, encode_cursor
from services.api.periods import DayRange, InvalidPeriod, day_range

pytestmark = pytest.mark.unit


@given(st.integers(min_value=1, max_value=MAX_SEQ))
def test_cursor_round_trips(seq: int) -> None:
    assert decode_cursor(encode_cursor(seq)) == seq


@given(st.text(max_size=40))
def test_any_text_decodes_or_is_invalid(text: str) -> None:
    try:
        seq = decode_cursor(text)
    except InvalidCursor:
        return
    assert encode_cursor(seq) == text


@pytest.mark.parametrize("seq", [0, -1, MAX_SEQ + 1])
def test_out_of_range_seq_is_invalid(seq: int) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(encode_cursor(seq))


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (None, None, DayRange(None, None)),
        ("2026-11-27", "2026-11-28", DayRange(date(2026, 11, 27), date(2026, 11, 28))),
        ("2026-11-27T23:59:59Z", None, DayRange(date(2026, 11, 27), None)),
        ("2026-11-27T23:00:00-02:00", None, DayRange(date(2026, 11, 28), None)),
        (None, "2026-11-28T00:00:00Z", DayRange(None, date(2026, 11, 28))),
        (None, "2026-11-28T00:00:00.001Z", DayRange(None, date(2026, 11, 29))),
        (None, "2026-11-28T01:00:00+01:00", DayRange(None, date(2026, 11, 28))),
        (None, "9999-12-31T12:00:00Z", DayRange(None, None)),
    ],
)
def test_bounds_become_utc_days(start: str | None, end: str | None, expected: DayRange) -> None:
    assert day_range(start, end) == expected


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("yesterday", None),
        ("2026-11-27T10:00:00", None),  # no time zone
        ("2026-13-01", None),
        ("0001-01-01T00:00:00+01:00", None),
        ("2026-11-28", "2026-11-27"),
    ],
)
def test_bad_bounds_are_invalid(start: str | None, end: str | None) -> None:
    with pytest.raises(InvalidPeriod):
        day_range(start, end)
