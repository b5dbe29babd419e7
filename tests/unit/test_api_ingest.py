"""POST /v1/usage's check of a batch: each item against usage.recorded, named by index."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.api.ingest import CheckedBatch, check_batch
from services.common.settings import DEFAULT_PRICEBOOK
from services.pricing.admission import DEFAULT_DEDUP_WINDOW
from services.pricing.pricebook import load_pricebook

pytestmark = pytest.mark.unit

VALID = {
    "event_id": "e-1", "account_id": "acct-1", "model": "mimo-v2-pro", "input_tokens": 10,
    "output_tokens": 5, "occurred_at": "2026-11-27T19:00:00Z", "gateway_id": "gw",
}  # fmt: skip
BOOK = load_pricebook(DEFAULT_PRICEBOOK)
ARRIVED = datetime(2026, 11, 27, 20, tzinfo=UTC)


def check(items: list[Any], received: datetime = ARRIVED) -> CheckedBatch:
    return check_batch(items, BOOK, received, DEFAULT_DEDUP_WINDOW)


def test_valid_items_become_events_in_order_and_invalid_ones_are_named() -> None:
    items = [VALID, {**VALID, "input_tokens": "10"}, 7, {**VALID, "event_id": "e-2"}]
    checked = check(items)
    assert [e.event_id for e in checked.valid] == ["e-1", "e-2"]
    assert [(r.index, r.error) for r in checked.rejected] == [
        (1, "invalid_event"),
        (2, "invalid_event"),
    ]
    assert checked.rejected[0].detail.startswith("input_tokens:")


@pytest.mark.parametrize(
    "change",
    [
        {"cached_input_tokens": 11},
        {"occurred_at": "2026-11-27T19:00:00"},
        {"account_id": "has space"},
        {"type": "credits.debited"},
        {"schema_version": 2},
        {"unknown": 1},
        {"output_tokens": 10**13},
        {"hold_id": ""},
    ],
)
def test_what_the_contract_refuses_is_rejected(change: dict[str, object]) -> None:
    assert len(check([{**VALID, **change}]).rejected) == 1


def test_an_optional_hold_id_is_kept() -> None:
    [event] = check([{**VALID, "hold_id": "h-1"}]).valid
    assert event.hold_id == "h-1"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"model": "gpt-4o"}, "unknown_model"),
        # Too old to be recognised if re-sent comes first: no price book can change that.
        ({"occurred_at": "2020-01-01T00:00:00Z"}, "outside_dedup_window"),
        ({"occurred_at": "9999-01-01T00:00:00Z"}, "invalid_event"),
        ({"occurred_at": "2026-11-28T20:00:00.000001Z"}, "invalid_event"),
        ({"input_tokens": 1_048_577}, "exceeds_context"),
        ({"occurred_at": "2026-10-28T19:59:59.999999Z"}, "outside_dedup_window"),
    ],
)
def test_what_pricing_would_reject_is_rejected_with_its_code(
    change: dict[str, object], code: str
) -> None:
    checked = check([VALID, {**VALID, **change, "event_id": "e-2"}])
    assert [e.event_id for e in checked.valid] == ["e-1"]
    assert [(r.index, r.error) for r in checked.rejected] == [(1, code)]


def test_the_edges_of_the_window_and_of_the_future_are_accepted() -> None:
    items = [
        {**VALID, "occurred_at": "2026-11-28T20:00:00Z"},
        {**VALID, "occurred_at": "2026-10-28T20:00:00Z"},
    ]
    assert len(check(items).valid) == 2
    narrow = check_batch(items, BOOK, ARRIVED, timedelta(days=29))
    assert [r.error for r in narrow.rejected] == ["outside_dedup_window"]


def test_before_the_first_price_version_inside_the_window_is_no_price_version() -> None:
    item = {**VALID, "occurred_at": "2026-04-02T23:59:59Z"}  # the book starts 2026-04-03
    checked = check_batch([item], BOOK, ARRIVED, timedelta(days=399))
    assert [r.error for r in checked.rejected] == ["no_price_version"]
