"""The synthetic traffic generator: deterministic, realistic, honest about bad input."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from schemas.events import UsageRecorded
from services.traffic.token_profiles import CONTEXT_1M, CONTEXT_256K
from services.traffic.traffic import (
    MIX_MODELS,
    UNKNOWN_MODEL,
    TrafficPlan,
    generate_messages,
    generate_usage,
    parse_mix,
    uuid4_text,
)

pytestmark = pytest.mark.unit

FIXED = datetime(2026, 11, 27, 19, 0, tzinfo=UTC)


def fixed_clock() -> datetime:
    return FIXED


def mix_name(event: UsageRecorded) -> str:
    if event.model == "mimo-v2-pro":
        return "pro1m" if event.input_tokens > CONTEXT_256K else "pro"
    return {"mimo-v2-omni": "omni", "mimo-v2-tts": "tts"}[event.model]


def test_same_plan_gives_the_same_events_and_ids() -> None:
    plan = TrafficPlan(accounts=50, events=2_000, seed=7, duplicates=0.05, malformed=0.05)
    assert list(generate_messages(plan, fixed_clock)) == list(generate_messages(plan, fixed_clock))


def test_another_seed_or_account_count_gives_other_event_ids() -> None:
    def ids(plan: TrafficPlan) -> set[str]:
        return {e.event_id for e in generate_usage(plan) if isinstance(e, UsageRecorded)}

    base = ids(TrafficPlan(accounts=50, events=500, seed=7))
    assert base.isdisjoint(ids(TrafficPlan(accounts=50, events=500, seed=8)))
    assert base.isdisjoint(ids(TrafficPlan(accounts=51, events=500, seed=7)))


def test_a_longer_run_of_the_same_plan_starts_with_the_same_events() -> None:
    short = list(generate_messages(TrafficPlan(accounts=9, events=700, seed=3), fixed_clock))
    long = list(generate_messages(TrafficPlan(accounts=9, events=1_500, seed=3), fixed_clock))
    assert long[:700] == short


def test_fast_json_is_byte_identical_to_pydantic_and_ids_are_unique_uuid4() -> None:
    plan = TrafficPlan(accounts=200, events=5_000, seed=11)
    messages = list(generate_messages(plan))
    events = [UsageRecorded.model_validate_json(m.value) for m in messages]
    assert all(
        m.value == e.model_dump_json().encode() for m, e in zip(messages, events, strict=True)
    )
    assert all(m.key == e.account_id.encode() for m, e in zip(messages, events, strict=True))
    assert len({e.event_id for e in events}) == len(events)
    parsed = [uuid.UUID(e.event_id) for e in events[:500]]
    assert all(u.version == 4 and u.variant == uuid.RFC_4122 for u in parsed)
    assert all(e.occurred_at.tzinfo is not None for e in events)


def test_uuid4_text_is_a_canonical_version_4_uuid() -> None:
    for variant in range(4):
        text = uuid4_text("f" * 32, variant)
        assert str(uuid.UUID(text)) == text
        assert uuid.UUID(text).version == 4


def test_mix_shares_are_roughly_the_ones_asked_for() -> None:
    plan = TrafficPlan(accounts=1_000, events=10_000, seed=5)
    events = [e for e in generate_usage(plan) if isinstance(e, UsageRecorded)]
    shares = Counter(mix_name(e) for e in events)
    expected = {"omni": 0.60, "pro": 0.30, "pro1m": 0.05, "tts": 0.05}
    for name, share in expected.items():
        assert shares[name] / len(events) == pytest.approx(share, abs=0.02), name


def test_a_custom_mix_leaves_out_what_it_does_not_name() -> None:
    plan = TrafficPlan(accounts=10, events=2_000, mix=parse_mix("tts=1,pro1m=3"))
    events = [e for e in generate_usage(plan) if isinstance(e, UsageRecorded)]
    shares = Counter(mix_name(e) for e in events)
    assert set(shares) == {"tts", "pro1m"}
    assert shares["pro1m"] / len(events) == pytest.approx(0.75, abs=0.04)


def test_tokens_are_in_range_and_heavy_tailed() -> None:
    plan = TrafficPlan(accounts=100, events=10_000, seed=2)
    events = [e for e in generate_usage(plan) if isinstance(e, UsageRecorded)]
    for e in events:
        assert 0 <= e.cached_input_tokens <= e.input_tokens
        assert e.input_tokens >= 1 and e.output_tokens >= 1
        limit = CONTEXT_1M if mix_name(e) == "pro1m" else CONTEXT_256K
        assert e.input_tokens <= limit
    pro1m = [e.input_tokens for e in events if mix_name(e) == "pro1m"]
    assert pro1m and all(CONTEXT_256K < n <= CONTEXT_1M for n in pro1m)
    omni = sorted(e.input_tokens for e in events if e.model == "mimo-v2-omni")
    median, p99 = omni[len(omni) // 2], omni[len(omni) * 99 // 100]
    assert p99 > 10 * median  # a long tail, not a bell
    assert 0.3 < sum(e.cached_input_tokens > 0 for e in events) / len(events) < 0.6


def test_heavier_accounts_come_more_often() -> None:
    plan = TrafficPlan(accounts=1_000, events=10_000, seed=4, account_prefix="org:")
    counts = Counter(m.key for m in generate_messages(plan))
    assert counts[b"org:1"] > 5 * max(counts[b"org:500"], 1)
    assert all(k.startswith(b"org:") and 1 <= int(k[4:]) <= 1_000 for k in counts)


def test_duplicates_repeat_earlier_events_exactly() -> None:
    plan = TrafficPlan(accounts=30, events=10_000, seed=6, duplicates=0.1)
    seen: set[bytes] = set()
    kinds: Counter[str] = Counter()
    for message in generate_messages(plan):
        kinds[message.kind] += 1
        if message.kind == "duplicate":
            assert message.value in seen
        else:
            assert message.value not in seen
        seen.add(message.value)
    assert kinds["duplicate"] / plan.events == pytest.approx(0.1, abs=0.015)


def unpriceable(raw: bytes) -> bool:
    """Malformed input is invalid, or valid in shape but with a model or size nobody prices."""
    try:
        event = UsageRecorded.model_validate_json(raw)
    except ValidationError:
        return True
    return event.model == UNKNOWN_MODEL or event.input_tokens > CONTEXT_1M


def test_malformed_events_do_not_validate_or_cannot_be_priced() -> None:
    plan = TrafficPlan(accounts=30, events=10_000, seed=8, malformed=0.05)
    items = list(generate_usage(plan))
    bad = [i for i in items if isinstance(i, bytes)]
    assert len(bad) / len(items) == pytest.approx(0.05, abs=0.01)
    assert all(unpriceable(raw) for raw in bad)
    assert all(b"\n" not in raw for raw in bad)
    kinds = Counter(_malformed_kind(raw) for raw in bad)
    assert set(kinds) == {"invalid_json", "negative_tokens", "unknown_model", "over_context"}
    good = [i for i in items if isinstance(i, UsageRecorded)]
    assert all(e.model in MIX_MODELS.values() for e in good)


def _malformed_kind(raw: bytes) -> str:
    try:
        fields = json.loads(raw)
    except ValueError:
        return "invalid_json"
    if fields["output_tokens"] < 0:
        return "negative_tokens"
    return "unknown_model" if fields["model"] == UNKNOWN_MODEL else "over_context"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"accounts": 0},
        {"events": -1},
        {"duplicates": 0.7, "malformed": 0.5},
        {"malformed": 1.5},
        {"mix": {"gpt": 1.0}},
        {"mix": {"omni": 0.0}},
        {"account_prefix": "bad prefix "},
    ],
)
def test_impossible_plans_are_refused(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"accounts": 10, "events": 10, **kwargs}
    with pytest.raises(ValueError):
        TrafficPlan(**args)  # type: ignore[arg-type]


def test_parse_mix() -> None:
    assert parse_mix("omni=60, pro=30,pro1m=5,tts=5") == {
        "omni": 60.0,
        "pro": 30.0,
        "pro1m": 5.0,
        "tts": 5.0,
    }
    with pytest.raises(ValueError):
        parse_mix("omni")
