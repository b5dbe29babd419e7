"""The event contracts: every rule docs/contracts.md states, with valid and invalid examples."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.events import (
    CreditsAdjusted,
    CreditsDebited,
    CreditsGranted,
    UsageRecorded,
    UsageRejected,
    parse_ledger_entry,
)
from schemas.export import JSON_DIR, render

pytestmark = pytest.mark.unit

USAGE: dict[str, Any] = {
    "type": "usage.recorded",
    "schema_version": 1,
    "event_id": "0b8f5c1e-1d2a-4c7e-9a55-3f1f7d0c2b11",
    "account_id": "acct-42",
    "model": "mimo-v2-pro",
    "input_tokens": 1200,
    "cached_input_tokens": 0,
    "output_tokens": 300,
    "occurred_at": "2026-11-27T19:00:00Z",
    "gateway_id": "gw-eu-1",
    "request_id": "optional",
}
DEBIT: dict[str, Any] = {
    "type": "credits.debited",
    "schema_version": 1,
    "entry_id": "6f1c1f8e-5b7a-5d7e-8a4c-2b1e3f4d5c6b",
    "account_id": "acct-42",
    "usage_event_id": "0b8f5c1e-1d2a-4c7e-9a55-3f1f7d0c2b11",
    "model": "mimo-v2-pro",
    "tier": "256k",
    "multiplier": "2",
    "billable_tokens": 1500,
    "credits": 3000,
    "price_version": "2026-04-03",
    "occurred_at": "2026-11-27T19:00:00Z",
    "priced_at": "2026-11-27T19:00:01Z",
}
GRANT: dict[str, Any] = {
    "type": "credits.granted",
    "schema_version": 1,
    "entry_id": "7a1c1f8e-5b7a-4d7e-8a4c-2b1e3f4d5c6b",
    "account_id": "acct-42",
    "credits": 1_000_000,
    "reason": "purchase",
    "reference": "order-7731",
    "category": "paid",
    "occurred_at": "2026-11-27T19:00:00Z",
}
ADJUST: dict[str, Any] = {
    "type": "credits.adjusted",
    "schema_version": 1,
    "entry_id": "8b1c1f8e-5b7a-4d7e-8a4c-2b1e3f4d5c6b",
    "account_id": "acct-42",
    "credits": -500,
    "reason": "double charge on 2026-11-01",
    "occurred_at": "2026-11-27T19:00:00Z",
}
REJECTED: dict[str, Any] = {
    "type": "usage.rejected",
    "schema_version": 1,
    "error": "unknown_model",
    "detail": "model 'gpt-x' is not in price book 2026-04-03",
    "payload": "{}",
    "source": {"topic": "usage.v1", "partition": 3, "offset": 1207},
    "rejected_at": "2026-11-27T19:00:00Z",
}


def with_(base: dict[str, Any], **changes: Any) -> str:
    return json.dumps({**base, **changes})


def test_valid_usage_parses() -> None:
    event = UsageRecorded.model_validate_json(json.dumps(USAGE))
    assert event.input_tokens == 1200 and event.occurred_at.tzinfo is not None


def test_usage_optional_fields_default() -> None:
    minimal = {k: v for k, v in USAGE.items() if k not in ("cached_input_tokens", "request_id")}
    event = UsageRecorded.model_validate_json(json.dumps(minimal))
    assert event.cached_input_tokens == 0 and event.request_id is None


@pytest.mark.parametrize(
    "changes",
    [
        {"input_tokens": -1},
        {"output_tokens": "300"},
        {"input_tokens": 12.0},
        {"input_tokens": True},
        {"input_tokens": 10**13},
        {"cached_input_tokens": 1201},
        {"occurred_at": "2026-11-27T19:00:00"},
        {"occurred_at": "yesterday"},
        {"account_id": ""},
        {"account_id": "a" * 129},
        {"account_id": "acct 42"},
        {"account_id": "acct/42"},
        {"account_id": "ácct"},
        {"type": "usage.recorded.v2"},
        {"schema_version": 2},
        {"unknown_field": 1},
        {"event_id": ""},
    ],
)
def test_invalid_usage_is_rejected(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        UsageRecorded.model_validate_json(with_(USAGE, **changes))


@pytest.mark.parametrize("field", ["event_id", "account_id", "model", "input_tokens"])
def test_usage_required_fields(field: str) -> None:
    with pytest.raises(ValidationError):
        UsageRecorded.model_validate_json(
            json.dumps({k: v for k, v in USAGE.items() if k != field})
        )


def test_account_id_limits() -> None:
    assert UsageRecorded.model_validate_json(with_(USAGE, account_id="a" * 128))
    assert UsageRecorded.model_validate_json(with_(USAGE, account_id="org:team@x.y_z-1"))


def test_ledger_entries_parse_by_type() -> None:
    assert isinstance(parse_ledger_entry(json.dumps(DEBIT)), CreditsDebited)
    assert isinstance(parse_ledger_entry(json.dumps(GRANT)), CreditsGranted)
    assert isinstance(parse_ledger_entry(json.dumps(ADJUST)), CreditsAdjusted)


def test_debit_round_trips_multiplier_as_exact_decimal_text() -> None:
    debit = CreditsDebited.model_validate_json(with_(DEBIT, multiplier="0.125"))
    assert json.loads(debit.model_dump_json())["multiplier"] == "0.125"


@pytest.mark.parametrize(
    ("base", "changes"),
    [
        (DEBIT, {"credits": -1}),
        (DEBIT, {"multiplier": "-1"}),
        (DEBIT, {"multiplier": "NaN"}),
        (DEBIT, {"entry_id": "not-a-uuid"}),
        (GRANT, {"credits": 0}),
        (GRANT, {"credits": -5}),
        (GRANT, {"reason": "gift"}),
        (ADJUST, {"reason": ""}),
        (ADJUST, {"credits": "5"}),
        (REJECTED, {"error": "other"}),
        (REJECTED, {"source": {"topic": "usage.v1", "partition": -1, "offset": 0}}),
    ],
)
def test_invalid_entries_are_rejected(base: dict[str, Any], changes: dict[str, Any]) -> None:
    model = {
        "credits.debited": CreditsDebited,
        "credits.granted": CreditsGranted,
        "credits.adjusted": CreditsAdjusted,
        "usage.rejected": UsageRejected,
    }[base["type"]]
    with pytest.raises(ValidationError):
        model.model_validate_json(with_(base, **changes))


def test_adjustment_without_reason_is_rejected() -> None:
    with pytest.raises(ValidationError):
        CreditsAdjusted.model_validate_json(
            json.dumps({k: v for k, v in ADJUST.items() if k != "reason"})
        )


def test_valid_rejection_parses() -> None:
    assert UsageRejected.model_validate_json(json.dumps(REJECTED)).source.offset == 1207


def test_events_are_frozen() -> None:
    event = UsageRecorded.model_validate_json(json.dumps(USAGE))
    with pytest.raises(ValidationError):
        event.input_tokens = 5  # type: ignore[misc]


def test_exported_json_schemas_are_current() -> None:
    """Fails when schemas/json/ is stale: run `make schemas`."""
    for name, text in render().items():
        assert (JSON_DIR / name).read_text() == text, f"{name} is stale: run `make schemas`"
