"""The pure parts of POST credits: deterministic entry ids, body digests, contract fields."""

from __future__ import annotations

from typing import get_args

import pytest
from pydantic import ValidationError

from schemas.events import BALANCE_LIMIT, CreditsAdjusted, CreditsGranted
from services.api.grants import (
    adjusted_event,
    grant_entry_id,
    granted_event,
    past_balance_limit,
    request_digest,
)
from services.api.models import AdjustmentRequest, GrantRequest

pytestmark = pytest.mark.unit

BODY = GrantRequest(credits=10, reason="purchase", reference="order-1")


def test_entry_id_depends_on_account_and_key_only() -> None:
    assert grant_entry_id("acct-1", "k") == grant_entry_id("acct-1", "k")
    assert grant_entry_id("acct-1", "k") != grant_entry_id("acct-2", "k")
    assert grant_entry_id("acct-1", "k") != grant_entry_id("acct-1", "k2")
    # fixed forever: stored ledger entries carry it
    assert str(grant_entry_id("acct-42", "order-7731")) == "17cce0ef-ece1-599c-b4d3-d9fed46b13ce"


def test_digest_tells_bodies_apart() -> None:
    assert request_digest(BODY) == request_digest(GrantRequest.model_validate(BODY.model_dump()))
    assert request_digest(BODY) != request_digest(BODY.model_copy(update={"credits": 11}))
    assert request_digest(BODY) != request_digest(BODY.model_copy(update={"reason": "grant"}))


def test_request_accepts_what_the_event_accepts() -> None:
    event_reasons = get_args(CreditsGranted.model_fields["reason"].annotation)
    request_reasons = get_args(GrantRequest.model_fields["reason"].annotation)
    assert request_reasons == event_reasons
    event = granted_event("acct-1", grant_entry_id("acct-1", "k"), BODY)
    assert (event.credits, event.reason, event.reference) == (10, "purchase", "order-1")


@pytest.mark.parametrize(
    "body",
    [
        {"credits": 0, "reason": "purchase", "reference": "r"},
        {"credits": True, "reason": "purchase", "reference": "r"},
        {"credits": 1, "reason": "purchase", "reference": "r" * 1025},
    ],
)
def test_request_rejects_what_the_event_rejects(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        GrantRequest.model_validate(body)


def test_an_adjustment_and_a_grant_with_the_same_fields_differ() -> None:
    fields = {"credits": 10, "reason": "purchase", "reference": "order-1"}
    grant, adjustment = GrantRequest(**fields), AdjustmentRequest(**fields)  # type: ignore[arg-type]
    assert request_digest(grant) != request_digest(adjustment)


@pytest.mark.parametrize("body", [{"credits": 0, "reason": "r"}, {"credits": 5, "reason": ""}])
def test_adjustments_need_credits_and_a_reason(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        AdjustmentRequest.model_validate(body)


def grant(credits: int) -> CreditsGranted:
    body = GrantRequest(credits=credits, reason="grant", reference="r")
    return granted_event("a", grant_entry_id("a", "k"), body)


def adjust(credits: int) -> CreditsAdjusted:
    body = AdjustmentRequest(credits=credits, reason="r")
    return adjusted_event("a", grant_entry_id("a", "k"), body)


def test_balance_limit_is_the_projectors_inflow_outflow_rule() -> None:
    assert past_balance_limit(None, grant(2**62)) is None  # no entries yet
    near = BALANCE_LIMIT - 100
    assert past_balance_limit((near, 0), grant(100)) is None  # exactly at the limit
    assert "inflow" in (past_balance_limit((near, 0), grant(101)) or "")
    assert "inflow" in (past_balance_limit((near, near), adjust(101)) or "")
    assert past_balance_limit((near, near), adjust(100)) is None
    assert past_balance_limit((0, near), adjust(-100)) is None
    assert "outflow" in (past_balance_limit((0, near), adjust(-101)) or "")
    # Both totals only grow: spending does not make room for a grant.
    assert "inflow" in (past_balance_limit((near, near), grant(101)) or "")
