"""The hourly usage rollup the projector keeps beside the daily one (columns.totals)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.projector.columns import totals
from services.projector.ledger import usage_hour
from tests.factories import adjusted, debited, granted

pytestmark = pytest.mark.unit

PLUS_FIVE = timezone(timedelta(hours=5))


def test_an_hour_is_the_start_of_the_utc_hour() -> None:
    assert usage_hour(datetime(2026, 11, 28, 0, 59, 59, 999, tzinfo=PLUS_FIVE)) == datetime(
        2026, 11, 27, 19, 0, tzinfo=UTC
    )
    assert usage_hour(datetime(2026, 11, 27, 19, 0, tzinfo=UTC)).tzinfo == UTC


def test_debits_are_summed_per_account_hour_and_model() -> None:
    at = datetime(2026, 11, 27, 19, 0, tzinfo=UTC)
    log = [
        debited("a", 10, at=at),
        debited("a", 4, at=at + timedelta(minutes=59)),
        debited("a", 6, at=at + timedelta(hours=1)),  # the next hour, the same day
        debited("a", 2, model="mimo-v2-omni", at=at),
        debited("b", 8, at=at.astimezone(PLUS_FIVE)),
        granted("a"),
        adjusted("a"),
    ]
    hourly = totals(log)[14:]
    rows = sorted(zip(*hourly, strict=True))
    assert rows == [
        ("a", at, "mimo-v2-omni", 1, 1, 2),
        ("a", at, "mimo-v2-pro", 2, 7, 14),
        ("a", at + timedelta(hours=1), "mimo-v2-pro", 1, 3, 6),
        ("b", at, "mimo-v2-pro", 1, 4, 8),
    ]
    daily = sorted(zip(*totals(log)[8:14], strict=True))
    assert [r[3:] for r in daily] == [(1, 1, 2), (3, 10, 20), (1, 4, 8)]
