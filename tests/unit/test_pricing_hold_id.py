"""Pricing copies a usage event's hold_id to its debit, and a debit without one keeps the
bytes it always had."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from schemas.events import CreditsDebited
from services.common.settings import DEFAULT_PRICEBOOK
from services.pricing.debits import UsageMessage, price_message
from services.pricing.pricebook import load_pricebook

BOOK = load_pricebook(DEFAULT_PRICEBOOK)
NOW = datetime(2026, 11, 27, 19, 0, 5, tzinfo=UTC)
USAGE = {
    "event_id": "e-1", "account_id": "acct-1", "model": "mimo-v2-pro", "input_tokens": 100,
    "output_tokens": 50, "occurred_at": "2026-11-27T19:00:00Z", "gateway_id": "gw",
}  # fmt: skip


def priced(value: bytes) -> CreditsDebited:
    debit = price_message(UsageMessage("usage.v1", 0, 1, b"acct-1", value), BOOK, NOW)
    assert isinstance(debit, CreditsDebited)
    return debit


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({**USAGE, "hold_id": "h-1"}),
        json.dumps({**USAGE, "hold_id": "h-1"}, indent=1).replace("19:00:00Z", "19:00:00+00:00"),
    ],
)
def test_the_debit_carries_the_hold_id(text: str) -> None:
    debit = priced(text.encode())
    assert debit.hold_id == "h-1" and debit.credits == 300
    assert '"hold_id":"h-1","priced_at"' in debit.model_dump_json()


def test_without_a_hold_id_the_debit_has_no_such_field() -> None:
    debit = priced(json.dumps(USAGE).encode())
    assert debit.hold_id is None and "hold_id" not in debit.model_dump_json()
