"""The `from`/`to` bounds of GET .../usage, turned into the UTC days of the daily rollup.

A bound is a date (`2026-11-27`) or a datetime with a time zone. The rollup holds whole UTC
days, so `from` is inclusive and rounds down to its UTC day, `to` is exclusive and rounds
up to the next UTC midnight (a `to` already at midnight stays). Either may be omitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta


class InvalidPeriod(ValueError):
    """A bound that is neither a date nor a zoned datetime, or `from` after `to`."""


@dataclass(frozen=True)
class DayRange:
    first: date | None  # inclusive
    end: date | None  # exclusive


def _parse(text: str, name: str) -> date | datetime:
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidPeriod(f"{name} must be a date or an ISO 8601 datetime") from exc
    if moment.tzinfo is None:
        raise InvalidPeriod(f"{name} must carry a time zone, e.g. {text}Z")
    return moment


def _floor_day(bound: date | datetime) -> date:
    return bound.date() if isinstance(bound, datetime) else bound


def _ceil_day(bound: date | datetime) -> date | None:
    if not isinstance(bound, datetime):
        return bound
    day = bound.date()
    if bound.timetz() == time(tzinfo=UTC):
        return day
    # The last representable day has no next midnight: the range is then open-ended.
    return day + timedelta(days=1) if day < date.max else None


def day_range(start: str | None, end: str | None) -> DayRange:
    first = _floor_day(_parse(start, "from")) if start else None
    last = _ceil_day(_parse(end, "to")) if end else None
    if first is not None and last is not None and first > last:
        raise InvalidPeriod("from must not be after to")
    return DayRange(first=first, end=last)
