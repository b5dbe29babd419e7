"""The `from`/`to` bounds of GET .../usage, turned into the UTC days of the daily rollup
(or, for group_by=hour, the UTC hours of the hourly one).

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


# group_by=hour reads the hourly rollup for recent hours only: a chart of the last hours or
# days, not a history (the daily rollup is that).
HOUR_WINDOW = timedelta(days=7)
HOUR = timedelta(hours=1)
LAST_HOUR = datetime.max.replace(minute=0, second=0, microsecond=0, tzinfo=UTC)


@dataclass(frozen=True)
class HourRange:
    first: datetime  # inclusive, the start of an hour (UTC)
    end: datetime | None  # exclusive


def _as_moment(bound: date | datetime) -> datetime:
    if isinstance(bound, datetime):
        return bound
    return datetime.combine(bound, time(), tzinfo=UTC)


def _floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _ceil_hour(moment: datetime) -> datetime | None:
    floor = _floor_hour(moment)
    if floor == moment:
        return moment
    # The last representable hour has no next one: the range is then open-ended.
    return floor + HOUR if floor < LAST_HOUR else None


def hour_range(start: str | None, end: str | None, now: datetime) -> HourRange:
    """Whole UTC hours: `from` rounds down to its hour, `to` (exclusive) up to the next one.

    Hours before `now - HOUR_WINDOW` (its hour included) are never answered: an earlier or
    missing `from` starts there.
    """
    earliest = _floor_hour(now.astimezone(UTC) - HOUR_WINDOW)
    first = _floor_hour(_as_moment(_parse(start, "from"))) if start else earliest
    last = _ceil_hour(_as_moment(_parse(end, "to"))) if end else None
    if last is not None and first > last:
        raise InvalidPeriod("from must not be after to")
    return HourRange(first=max(first, earliest), end=last)
