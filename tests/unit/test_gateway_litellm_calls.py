"""What the LiteLLM callback reads from a call: account, model map, worst case, the event."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from services.gateway.litellm_calls import (
    STASH,
    Admission,
    CallRefused,
    account_of,
    account_source,
    estimate_tokens,
    internal_metadata_field,
    max_output_tokens,
    occurred_at,
    parse_model_map,
    usage_event,
)
from services.gateway.openai_usage import TokenCounts

pytestmark = pytest.mark.unit

KEY = SimpleNamespace(team_id="team-7", user_id="user-3", end_user_id=None)


def test_model_map_parses_pairs_and_refuses_malformed_ones() -> None:
    assert parse_model_map(" a=mimo-v2-pro, b = mimo-v2-omni ,") == {
        "a": "mimo-v2-pro",
        "b": "mimo-v2-omni",
    }
    assert parse_model_map("") == {}
    for bad in ("a", "a=", "=m", "a=m,b"):
        with pytest.raises(ValueError, match="LEDGER_LITELLM_MODELS"):
            parse_model_map(bad)


def test_account_comes_from_the_configured_field() -> None:
    data = {"user": "end-9", "metadata": {"tenant": "acct-m"}, "litellm_metadata": {"org": "o-1"}}
    assert account_of("team_id", KEY, data) == "team-7"
    assert account_of("user_id", KEY, data) == "user-3"
    assert account_of("end_user", KEY, data) == "end-9"
    keyed = SimpleNamespace(team_id=None, user_id=None, end_user_id="end-from-key")
    assert account_of("end_user", keyed, data) == "end-from-key"
    assert account_of(account_source("metadata.tenant"), KEY, data) == "acct-m"
    assert account_of(account_source("org"), KEY, data) == "o-1"


@pytest.mark.parametrize(
    ("source", "data", "code"),
    [
        ("end_user", {}, "account_missing"),
        ("tenant", {"metadata": {"tenant": 42}}, "account_missing"),
        ("end_user", {"user": "has spaces"}, "invalid_account"),
        ("end_user", {"user": "x" * 129}, "invalid_account"),
    ],
)
def test_an_unnamed_or_invalid_account_is_refused(
    source: str, data: dict[str, object], code: str
) -> None:
    with pytest.raises(CallRefused) as refused:
        account_of(source, SimpleNamespace(end_user_id=None), data)
    assert (refused.value.status, refused.value.code) == (400, code)


def test_worst_case_output_is_the_call_limit_or_the_default() -> None:
    assert max_output_tokens({"max_tokens": 50}, 4096) == 50
    assert max_output_tokens({"max_completion_tokens": 70, "max_tokens": 50}, 4096) == 70
    assert max_output_tokens({"max_output_tokens": 9}, 4096) == 9
    for data in ({}, {"max_tokens": None}, {"max_tokens": 0}, {"max_tokens": "9"},
                 {"max_tokens": True}):  # fmt: skip
        assert max_output_tokens(data, 4096) == 4096


def test_admission_round_trips_through_the_call_metadata() -> None:
    admission = Admission("c-1", "acct-1", "mimo-v2-pro", "hold-1")
    assert Admission.from_metadata({STASH: admission.as_stash()}) == admission
    assert Admission.from_metadata({}) is None
    assert Admission.from_metadata({STASH: {"account_id": 1, "model": "m"}}) is None
    # Without the kit's call id there is no event id to bill under: not this kit's call.
    assert Admission.from_metadata({STASH: {"account_id": "a", "model": "m"}}) is None


def test_occurred_at_is_an_aware_instant_and_the_same_for_the_same_end_time() -> None:
    naive = datetime(2026, 11, 27, 19, 0, 0)
    assert occurred_at(naive).tzinfo is not None
    assert occurred_at(naive) == occurred_at(naive)
    aware = datetime(2026, 11, 27, 19, 0, tzinfo=UTC)
    assert occurred_at(aware) == aware
    assert occurred_at(aware.timestamp()) == aware


def test_usage_event_carries_the_hold_and_the_kits_call_id() -> None:
    at = datetime(2026, 11, 27, 19, 0, tzinfo=UTC)
    event = usage_event(
        Admission("call-1", "acct-1", "mimo-v2-pro", "hold-1"), TokenCounts(10, 4, 5), at, "gw"
    )
    assert (event.event_id, event.account_id, event.model, event.hold_id) == (
        "call-1",
        "acct-1",
        "mimo-v2-pro",
        "hold-1",
    )
    assert (event.input_tokens, event.cached_input_tokens, event.output_tokens) == (10, 4, 5)
    assert (event.gateway_id, event.occurred_at) == ("gw", at)


def test_the_estimate_over_counts_text() -> None:
    text = "the quick brown fox jumps over the lazy dog " * 10
    assert estimate_tokens(text) >= len(text.split())
    assert estimate_tokens([None, {"a": object()}]) > 0


def test_the_stash_goes_where_the_proxy_keeps_its_own_metadata() -> None:
    assert internal_metadata_field({"metadata": {}}) == "metadata"
    assert internal_metadata_field({}) == "metadata"
    assert internal_metadata_field({"metadata": {}, "litellm_metadata": {}}) == "litellm_metadata"
