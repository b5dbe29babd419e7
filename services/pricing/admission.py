"""Whether a usage event can be billed: the one rule pricing and `POST /v1/usage` share.

Pure. The time it is judged against is an argument: pricing passes the Kafka timestamp of
the record it reads (so a replay or `ledger reprice` years later decides the same), the API
passes the moment the event reached it (so a gateway learns at once what pricing would
reject). Nothing here reads a clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from schemas.codec import UsageRecordedStruct, timestamp_text
from schemas.events import UsageRecorded
from services.pricing.pricebook import PriceBook, Quote, Rejection

# docs/contracts.md, Events: `occurred_at` is at most this far ahead of its arrival.
MAX_AHEAD = timedelta(hours=24)
# docs/contracts.md, Configuration (LEDGER_DEDUP_WINDOW_DAYS): the default dedup window.
DEFAULT_DEDUP_WINDOW = timedelta(days=30)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def received_at(timestamp_ms: int | None) -> datetime | None:
    """A Kafka record's timestamp as an instant; None when the record carries none (-1)."""
    if timestamp_ms is None or timestamp_ms < 0:
        return None
    return _EPOCH + timedelta(milliseconds=timestamp_ms)


def judge_time(
    occurred_at: datetime, received: datetime | None, window: timedelta
) -> Rejection | None:
    """`invalid_event` when occurred_at is more than 24 h after `received`,
    `outside_dedup_window` when it is more than `window` before it; None when it is in
    bounds, or when the arrival time is unknown (a record without a timestamp)."""
    if received is None:
        return None
    if occurred_at > received + MAX_AHEAD:
        return Rejection(
            "invalid_event",
            f"not a valid usage.recorded event: occurred_at {timestamp_text(occurred_at)} is "
            f"more than 24 h after the event arrived ({timestamp_text(received)})",
        )
    if occurred_at < received - window:
        return Rejection(
            "outside_dedup_window",
            f"occurred_at {timestamp_text(occurred_at)} is more than {window.days} days before "
            f"the event arrived ({timestamp_text(received)}): outside the window in which the "
            "ledger recognises a re-sent event (LEDGER_DEDUP_WINDOW_DAYS)",
        )
    return None


def judge_usage(
    usage: UsageRecorded | UsageRecordedStruct,
    book: PriceBook,
    received: datetime | None,
    window: timedelta,
) -> Quote | Rejection:
    """The quote of a valid event, or why pricing rejects it (the code pricing writes)."""
    late_or_early = judge_time(usage.occurred_at, received, window)
    if late_or_early is not None:
        return late_or_early
    return book.quote(
        model=usage.model,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cached_input_tokens=usage.cached_input_tokens,
        at=usage.occurred_at,
    )
