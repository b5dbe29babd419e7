"""POST /v1/usage's check of a batch: each item against usage.recorded, named by index."""

from __future__ import annotations

import pytest

from services.api.ingest import check_batch

pytestmark = pytest.mark.unit

VALID = {
    "event_id": "e-1", "account_id": "acct-1", "model": "mimo-v2-pro", "input_tokens": 10,
    "output_tokens": 5, "occurred_at": "2026-11-27T19:00:00Z", "gateway_id": "gw",
}  # fmt: skip


def test_valid_items_become_events_in_order_and_invalid_ones_are_named() -> None:
    items = [VALID, {**VALID, "input_tokens": "10"}, 7, {**VALID, "event_id": "e-2"}]
    checked = check_batch(items)
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
    assert len(check_batch([{**VALID, **change}]).rejected) == 1


def test_an_optional_hold_id_is_kept() -> None:
    [event] = check_batch([{**VALID, "hold_id": "h-1"}]).valid
    assert event.hold_id == "h-1"
