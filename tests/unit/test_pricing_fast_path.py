"""The pricing hot path (orjson, plain checks) against the authoritative pydantic path.

For any input, valid or not, `price_usage` must give exactly what `price_validated` gives:
the same debit bytes, or the same rejection with the same code and detail.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from schemas.debit_json import timestamp_text
from schemas.events import MAX_TOKENS, UsageRecorded
from schemas.usage_json import read_plain_usage
from services.common.settings import DEFAULT_PRICEBOOK
from services.pricing.debits import UsageMessage, price_usage, price_validated
from services.pricing.pricebook import load_pricebook, parse_pricebook

pytestmark = pytest.mark.unit

BOOK = load_pricebook(DEFAULT_PRICEBOOK)
# Two versions, weights and a fractional multiplier, so the hot path's cached JSON fragments
# and its version lookup are compared too.
WEIGHTED = parse_pricebook(
    DEFAULT_PRICEBOOK.read_text()
    + """
[[versions]]
version = "2027-01-01"
effective_from = 2027-01-01T00:00:00Z

[versions.models.mimo-v2-omni]
output_weight = "1.5"
cached_input_weight = "0.1"
tiers = [{ name = "128k", max_input_tokens = 131072, multiplier = "0.75" }]
"""
)
NOW = datetime(2026, 11, 27, 20, 0, 0, 123456, tzinfo=UTC)
NOW_TEXT = timestamp_text(NOW)

ZONES = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8)),
         timezone(timedelta(hours=23, minutes=59)), timezone(timedelta(0))]  # fmt: skip


ORDER = [*UsageRecorded.model_fields, "colour", "Model", "event_id "]


def spellings(at: datetime) -> st.SearchStrategy[Any]:
    """Ways a gateway may write a time: the usual, and ones the hot path leaves to pydantic."""
    iso = at.isoformat()
    return st.sampled_from([
        iso, iso.replace("+00:00", "Z"), iso.replace("+00:00", "-00:00"), iso.replace("T", " "),
        iso.replace("T", "t"), iso.replace("+00:00", "z"), iso[:19], iso[:19] + ".1234567Z",
        iso[:10], iso[:16] + "Z", iso[:19] + ".5+05:30", iso[:19] + "+24:00", iso[:17] + "60Z",
        at.timestamp(), int(at.timestamp()), "", "yesterday",
    ])  # fmt: skip


moments = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.sampled_from(ZONES)
)
recent = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2028, 1, 1), timezones=st.sampled_from(ZONES)
)
timestamps = st.one_of(recent, moments).flatmap(spellings)
weird = st.one_of(
    st.none(), st.booleans(), st.floats(allow_nan=False), st.integers(-(2**70), 2**70),
    st.text(max_size=5), st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(), st.none(), max_size=1),
)  # fmt: skip
identifiers = st.one_of(
    st.text(min_size=1, max_size=20),
    st.text(min_size=120, max_size=135),
    st.just(""),
    st.just('tab\t"quoted" \\ \u2028 é😀'),
    weird,
)
accounts = st.one_of(
    st.from_regex(r"[A-Za-z0-9._:@-]{1,128}", fullmatch=True),
    st.sampled_from(["acct-42", "acct-42\n", "", "a" * 129, "bad id!", "ünï"]),
    weird,
)
models = st.one_of(
    st.sampled_from(["mimo-v2-omni", "mimo-v2-pro", "mimo-v2-tts", "gpt-9", "MIMO-V2-PRO"]),
    identifiers,
)
tokens = st.one_of(
    st.integers(0, 2_000_000),
    st.sampled_from([0, 262_144, 262_145, 1_048_576, 1_048_577, MAX_TOKENS, MAX_TOKENS + 1, -1]),
    st.integers(-(2**70), 2**70),
    st.sampled_from([1.0, 12.5, True, False, "12", None]),
)
absent = object()
field_values: dict[str, st.SearchStrategy[Any]] = {
    "type": st.sampled_from(["usage.recorded", absent, "credits.debited", None]),
    "schema_version": st.sampled_from([1, absent, 2, 1.0, True, "1"]),
    "event_id": identifiers,
    "account_id": accounts,
    "model": models,
    "input_tokens": tokens,
    "cached_input_tokens": st.one_of(st.just(absent), tokens),
    "output_tokens": tokens,
    "occurred_at": timestamps,
    "gateway_id": identifiers,
    "request_id": st.one_of(st.just(absent), st.none(), identifiers),
    "hold_id": st.one_of(st.just(absent), st.none(), identifiers),
}


@st.composite
def usage_messages(draw: st.DrawFn) -> bytes:
    event: dict[str, Any] = {}
    for name, values in field_values.items():
        # Mostly well-formed values, so that many events get priced and are compared too.
        if draw(st.integers(0, 19)) < 17 and name not in ("type", "schema_version"):
            value = draw(_usual[name])
        else:
            value = draw(values)
        if value is not absent:
            event[name] = value
    if draw(st.integers(0, 19)) == 0:
        event[draw(st.sampled_from(["colour", "Model", "event_id "]))] = 1
    if draw(st.integers(0, 19)) == 0 and event:
        del event[draw(st.sampled_from(sorted(event)))]
    # Often the canonical form (the model's order, no space), which has a reader of its own.
    canonical = draw(st.booleans())
    names = sorted(event, key=ORDER.index) if canonical else draw(st.permutations(list(event)))
    text = json.dumps(
        {n: event[n] for n in names},
        ensure_ascii=draw(st.booleans()),
        separators=(",", ":") if canonical else None,
    )
    if draw(st.integers(0, 19)) == 0:  # a repeated key: JSON readers keep the last one
        text = text[:-1] + f', "event_id": {json.dumps(draw(st.text(max_size=8)))}}}'
    if draw(st.integers(0, 29)) == 0:
        text = text[: draw(st.integers(0, len(text)))]
    return text.encode("utf-8", "surrogatepass")


_usual: dict[str, st.SearchStrategy[Any]] = {
    "event_id": st.text(min_size=1, max_size=40),
    "account_id": st.from_regex(r"[A-Za-z0-9._:@-]{1,40}", fullmatch=True),
    "model": st.sampled_from(["mimo-v2-omni", "mimo-v2-pro", "mimo-v2-tts"]),
    "input_tokens": st.integers(0, 1_100_000),
    "cached_input_tokens": st.one_of(st.just(absent), st.integers(0, 1000)),
    "output_tokens": st.integers(0, 100_000),
    "occurred_at": recent.map(lambda at: at.isoformat().replace("+00:00", "Z")),
    "gateway_id": st.text(min_size=1, max_size=20),
    "request_id": st.one_of(st.just(absent), st.none(), st.text(min_size=1, max_size=20)),
    "hold_id": st.one_of(st.just(absent), st.none(), st.uuids().map(str)),
}


def message(value: bytes | None) -> UsageMessage:
    return UsageMessage(topic="usage.v1", partition=3, offset=7, key=b"k", value=value)


@settings(max_examples=1500)
@given(usage_messages(), st.sampled_from([BOOK, WEIGHTED]))
@example(
    b'{"event_id":"e","account_id":"a","model":"mimo-v2-pro","input_tokens":1,'
    b'"output_tokens":2,"occurred_at":"2026-11-27T19:00:00Z","gateway_id":"g"}',
    BOOK,
)
@example(
    b'{"event_id":"e","account_id":"a\\n","model":"mimo-v2-pro","input_tokens":1,'
    b'"output_tokens":2,"occurred_at":"2026-11-27T19:00:00Z","gateway_id":"g"}',
    BOOK,
)
@example(
    b'{"event_id":"\\ud800","account_id":"a","model":"mimo-v2-pro","input_tokens":1,'
    b'"output_tokens":2,"occurred_at":"2026-11-27T19:00:00Z","gateway_id":"g"}',
    BOOK,
)
@example(b"", BOOK)
@example(b"\xff", BOOK)
@example(b"[]", BOOK)
@example(b"null", BOOK)
def test_the_hot_path_prices_exactly_as_pydantic_does(value: bytes, book: Any) -> None:  # fmt: skip
    record = message(value)
    assert price_usage(record, book, NOW, NOW_TEXT) == price_validated(record, book, NOW, NOW_TEXT)


# Kafka timestamps around the generated occurred_at, and exactly at the window's edges.
_MS = int(NOW.timestamp() * 1000)
_EDGES = [_MS + d for d in (0, 24 * 3600_000, -30 * 86_400_000)]
timestamps = st.one_of(
    st.none(),
    st.just(-1),
    st.integers(_MS - 400 * 86_400_000, _MS + 400 * 86_400_000),
    st.sampled_from(_EDGES).flatmap(lambda ms: st.integers(ms - 2, ms + 2)),
)


@settings(max_examples=800)
@given(usage_messages(), timestamps)
def test_the_hot_path_judges_time_exactly_as_pydantic_does(
    value: bytes, timestamp: int | None
) -> None:
    record = UsageMessage("usage.v1", 3, 7, b"k", value, timestamp)
    assert price_usage(record, BOOK, NOW, NOW_TEXT) == price_validated(record, BOOK, NOW, NOW_TEXT)


@settings(max_examples=1500)
@given(usage_messages())
def test_what_the_plain_reader_accepts_pydantic_accepts_with_the_same_values(value: bytes) -> None:
    plain = read_plain_usage(value)
    if plain is None:
        return
    usage = UsageRecorded.model_validate_json(value)
    assert (usage.event_id, usage.account_id, usage.model) == plain[:3]
    assert (usage.input_tokens, usage.cached_input_tokens, usage.output_tokens) == plain[3:6]
    assert usage.occurred_at == plain.occurred_at
    assert usage.occurred_at.utcoffset() == plain.occurred_at.utcoffset()
    assert timestamp_text(usage.occurred_at) == plain.occurred_text


def test_the_generated_traffic_takes_the_hot_path() -> None:
    """A test that cannot fail is a defect: make sure the comparisons above see both ways."""
    valid = (
        b'{"type":"usage.recorded","schema_version":1,"event_id":"e","account_id":"acct-1",'
        b'"model":"mimo-v2-pro","input_tokens":1200,"cached_input_tokens":0,"output_tokens":300,'
        b'"occurred_at":"2026-11-27T19:00:00Z","gateway_id":"gw","request_id":null}'
    )
    assert read_plain_usage(valid) is not None
    assert read_plain_usage(valid.replace(b'"e",', b'"e" ,')) is not None  # the orjson way
    assert read_plain_usage(valid.replace(b"1200", b"1200.0")) is None
    assert read_plain_usage(valid.replace(b"T19", b"t19")) is None


BASE: dict[str, Any] = {
    "type": "usage.recorded", "schema_version": 1, "event_id": "e-1", "account_id": "acct-1",
    "model": "mimo-v2-pro", "input_tokens": 1200, "cached_input_tokens": 0,
    "output_tokens": 300, "occurred_at": "2026-11-27T19:00:00Z", "gateway_id": "gw",
}  # fmt: skip
EDGES: list[dict[str, Any]] = [
    *({name: "x" * n} for name in ("event_id", "gateway_id", "request_id") for n in (0, 128, 129)),
    *({name: "é" * n} for name in ("event_id", "request_id") for n in (128, 129)),
    {"account_id": "a" * 128}, {"account_id": "a" * 129}, {"account_id": "a\n"},
    {"account_id": "a b"}, {"account_id": "ä"}, {"model": ""}, {"model": "m" * 129},
    *({name: v} for name in ("input_tokens", "output_tokens", "cached_input_tokens")
      for v in (-1, 0, MAX_TOKENS, MAX_TOKENS + 1, 1.0, True, "1", None)),
    {"cached_input_tokens": 1200}, {"cached_input_tokens": 1201}, {"input_tokens": 262_145},
    {"input_tokens": 1_048_577}, {"model": "gpt-9"}, {"occurred_at": "2026-04-02T23:59:59Z"},
    {"occurred_at": "2026-04-03T00:00:00Z"}, {"occurred_at": "2026-04-03T05:29:59+05:30"},
    {"type": "usage.recorded "}, {"schema_version": 1.0}, {"schema_version": True},
    {"request_id": None}, {"occurred_at": "2026-02-30T00:00:00Z"},
]  # fmt: skip


@pytest.mark.parametrize("change", EDGES, ids=lambda c: repr(c)[:40])
def test_every_boundary_is_priced_exactly_as_pydantic_does(change: dict[str, Any]) -> None:
    record = message(json.dumps({**BASE, **change}).encode())
    assert price_usage(record, BOOK, NOW, NOW_TEXT) == price_validated(record, BOOK, NOW, NOW_TEXT)
