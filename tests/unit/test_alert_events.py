"""The alert events of schemas/events.py: balance.low, balance.exhausted, balance.recovered."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.events import BalanceExhausted, BalanceLow, BalanceRecovered, parse_alert

pytestmark = pytest.mark.unit

ALERT: dict[str, Any] = {
    "type": "balance.low", "schema_version": 1, "alert_id": str(uuid.uuid4()),
    "account_id": "acct-42", "threshold": 100000, "balance": 99000,
    "previous_balance": 101000, "entry_id": str(uuid.uuid4()),
    "occurred_at": "2026-11-27T19:00:00Z",
}  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "cls"),
    [("balance.low", BalanceLow), ("balance.exhausted", BalanceExhausted),
     ("balance.recovered", BalanceRecovered)],
)  # fmt: skip
def test_alerts_parse_by_type_and_keep_the_contract_s_field_order(kind: str, cls: type) -> None:
    event = parse_alert(json.dumps({**ALERT, "type": kind}))
    assert isinstance(event, cls)
    assert list(json.loads(event.model_dump_json())) == list(ALERT)


@pytest.mark.parametrize(
    "changes",
    [
        {"type": "balance.high"},
        {"schema_version": 2},
        {"threshold": -1},
        {"threshold": "5"},
        {"threshold": 2**63},
        {"account_id": "bad id"},
        {"alert_id": "not-a-uuid"},
        {"occurred_at": "2026-11-27T19:00:00"},
        {"extra": 1},
    ],
)
def test_invalid_alerts_are_rejected(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        parse_alert(json.dumps({**ALERT, **changes}))


@pytest.mark.parametrize("field", ["alert_id", "balance", "previous_balance", "entry_id"])
def test_every_field_is_required(field: str) -> None:
    with pytest.raises(ValidationError):
        parse_alert(json.dumps({k: v for k, v in ALERT.items() if k != field}))
