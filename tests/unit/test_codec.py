"""The hot path's codecs (schemas/codec.py) against the contract's pydantic models
(schemas/events.py): the same fields in the same order with the same limits, the same
inputs accepted (and refused for the same kind of reason), the same bytes written and the
same content digest. A change to one side that the other does not follow fails here."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from schemas.codec import (
    CreditsDebitedStruct,
    UsageRecordedStruct,
    decode_ledger_entry,
    decode_usage,
    encode,
)
from schemas.events import (
    MAX_TOKENS,
    CreditsDebited,
    RejectionCode,
    UsageRecorded,
    UsageRejected,
    dump,
    parse_ledger_entry,
)
from services.common.settings import DEFAULT_PRICEBOOK
from services.pricing.debits import UsageMessage, classify, price_message
from services.pricing.pricebook import load_pricebook
from services.projector.columns import journal_copy
from services.projector.ledger import RejectedMessage, SourcedEntry, content_digest, read_message
from tests.entry_keys import VERIFY_KEYS
from tests.factories import extreme_moments, repeats_a_key, usage_messages

pytestmark = pytest.mark.unit

PAIRS = [(UsageRecordedStruct, UsageRecorded), (CreditsDebitedStruct, CreditsDebited)]
# What the two JSON Schemas must agree on, property by property.
_RULES = ("type", "enum", "format", "minLength", "maxLength", "pattern", "minimum", "maximum")


def _rules(prop: dict[str, Any]) -> dict[str, Any]:
    """The rules of one property of either JSON Schema, written one way."""
    if "anyOf" in prop:
        return {"anyOf": [_rules(p) for p in prop["anyOf"]]}
    if "const" in prop:
        prop = {"enum": [prop["const"]]}  # pydantic's const, msgspec's enum; the type follows
    rules = {k: v for k, v in prop.items() if k in _RULES and not (k == "type" and "enum" in prop)}
    if "pattern" in rules:  # msgspec's ^(?:...)\Z is the model's ^...$ (see schemas/codec.py)
        rules["pattern"] = rules["pattern"].replace("^(?:", "^", 1).replace(")\\Z", "$")
    return rules


@pytest.mark.parametrize(("struct", "model"), PAIRS, ids=lambda t: t.__name__)
def test_the_structs_hold_the_models_fields_in_order_with_their_limits(
    struct: type[msgspec.Struct], model: type[BaseModel]
) -> None:
    (_,), components = msgspec.json.schema_components([struct])
    mine, theirs = components[struct.__name__], model.model_json_schema()
    assert list(mine["properties"]) == list(theirs["properties"])  # names and order
    # The multiplier's rule (a finite decimal >= 0) is code on both sides: checked below.
    names = [n for n in theirs["properties"] if n != "multiplier"]
    assert {n: _rules(mine["properties"][n]) for n in names} == {
        n: _rules(theirs["properties"][n]) for n in names
    }
    # The Struct's tag is listed as required; decoding one alone, it is optional like the
    # model's (on ledger.v1 both require it: decode_ledger_entry and LedgerEntry).
    assert set(mine["required"]) - {"type"} == set(theirs["required"])
    assert mine["additionalProperties"] is theirs["additionalProperties"] is False
    defaults = {n: p["default"] for n, p in mine["properties"].items() if "default" in p}
    assert defaults == {n: theirs["properties"][n]["default"] for n in defaults}


def _code(error: ValidationError, value: bytes) -> RejectionCode:
    """The rejection code of what pydantic refused: not JSON (pydantic also reads NaN and
    Infinity, which JSON does not have), or a broken rule."""
    first = error.errors()[0]
    if first["type"] == "json_invalid" or (first["type"] == "model_type" and not first["loc"]):
        return "invalid_json"
    try:
        json.loads(value, parse_constant=_not_json)
    except ValueError:
        return "invalid_json"
    return "invalid_event"


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def usage_agrees(value: bytes) -> None:
    try:
        model = UsageRecorded.model_validate_json(value)
    except ValidationError as error:
        with pytest.raises(msgspec.DecodeError) as refused:
            decode_usage(value)
        assert classify(refused.value, value)[0] == _code(error, value)
        return
    if repeats_a_key(value):
        # Both keep a repeated key's last value, but the codec checks each one as it reads
        # it: an earlier value that breaks a rule is refused (pydantic never looks at it).
        with contextlib.suppress(msgspec.ValidationError):
            assert encode(decode_usage(value)) == dump(model)
        return
    usage = decode_usage(value)
    assert encode(usage) == dump(model)  # every value, and the bytes written for it
    assert usage.occurred_at == model.occurred_at


@settings(max_examples=1500)
@given(usage_messages())
@example(
    b'{"event_id":"e","account_id":"a\\n","model":"mimo-v2-pro","input_tokens":1,'
    b'"output_tokens":2,"occurred_at":"2026-11-27T19:00:00Z","gateway_id":"g"}'
)
@example(
    b'{"event_id":"\\ud800","account_id":"a","model":"mimo-v2-pro","input_tokens":1,'
    b'"output_tokens":2,"occurred_at":"2026-11-27T19:00:00Z","gateway_id":"g","hold_id":null}'
)
@example(b"")
@example(b"\xff")
@example(b"[]")
@example(b"null")
def test_the_usage_codec_accepts_what_the_model_accepts(value: bytes) -> None:
    usage_agrees(value)


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
    {"cached_input_tokens": 1200}, {"cached_input_tokens": 1201},
    {"type": "usage.recorded "}, {"schema_version": 1.0}, {"schema_version": True},
    {"request_id": None}, {"hold_id": None}, {"occurred_at": "2026-02-30T00:00:00Z"},
    {"occurred_at": 1764270000}, {"occurred_at": "2026-11-27T19:00Z"},
    {"occurred_at": "2026-11-27T19:00:00"}, {"occurred_at": "2026-11-27T19:00:00.1234567Z"},
]  # fmt: skip


@pytest.mark.parametrize("change", EDGES, ids=lambda c: repr(c)[:40])
def test_every_boundary_is_read_as_the_model_reads_it(change: dict[str, Any]) -> None:
    usage_agrees(json.dumps({**BASE, **change}).encode())


_identifiers = st.one_of(
    st.text(min_size=1, max_size=20),
    st.text(min_size=126, max_size=128),
    st.just('tab\t"quoted" \\ é'),
)
debits = st.builds(
    CreditsDebited,
    entry_id=st.uuids(),
    account_id=st.from_regex(r"[A-Za-z0-9._:@-]{1,128}", fullmatch=True),
    usage_event_id=_identifiers,
    model=_identifiers,
    tier=_identifiers,
    multiplier=st.one_of(
        st.decimals(min_value=0, max_value=100, allow_nan=False, places=4),
        st.sampled_from([Decimal(n) for n in ("0", "1E+5", "1E-20", "10.50")]),
    ),
    billable_tokens=st.integers(0, 10**12),
    credits=st.integers(0, 2**62),
    price_version=_identifiers,
    occurred_at=extreme_moments,
    hold_id=st.one_of(st.none(), _identifiers),
    priced_at=extreme_moments,
)


@given(debits)
def test_the_debit_struct_writes_the_bytes_the_model_writes(entry: CreditsDebited) -> None:
    """What pricing writes is what the writer before it wrote: stored logs still read."""
    fields = {n: getattr(entry, n) for n in CreditsDebitedStruct.__struct_fields__}
    struct = CreditsDebitedStruct(**fields)
    assert encode(struct) == dump(entry)
    assert content_digest(struct) == content_digest(entry)


def ledger_agrees(raw: bytes) -> None:
    try:
        model = parse_ledger_entry(raw)
    except ValidationError:
        with pytest.raises((msgspec.DecodeError, ValidationError)):
            decode_ledger_entry(raw)
        return
    entry = decode_ledger_entry(raw)
    if not isinstance(model, CreditsDebited):
        assert entry == model
        return
    assert isinstance(entry, CreditsDebitedStruct)
    assert encode(entry) == dump(model)
    assert content_digest(entry) == content_digest(model)


_REPLACEMENTS: list[tuple[str, Any]] = [
    ("credits", -1), ("credits", 2**62 + 1), ("credits", 1.0), ("credits", True),
    ("credits", "5"), ("billable_tokens", 10**12 + 1), ("schema_version", 2),
    ("schema_version", True), ("schema_version", 1.0),
    ("entry_id", "0F8FAD5B-D9CB-569F-A165-70867728950E"),
    ("entry_id", "0f8fad5bd9cb569fa16570867728950e"), ("entry_id", 5), ("entry_id", "x"),
    ("account_id", "a b"), ("account_id", "a\n"), ("account_id", "x" * 129),
    ("account_id", 'a"b'), ("model", ""), ("tier", "x" * 129), ("hold_id", ""),
    ("hold_id", None), ("hold_id", 7), ("multiplier", "1.5e0"), ("multiplier", 1.5),
    ("multiplier", 2), ("multiplier", "-1"), ("multiplier", "NaN"), ("multiplier", "Infinity"),
    ("multiplier", "01"), ("multiplier", " 1"), ("multiplier", "1_0"),
    ("occurred_at", "2026-12-01T09:00:00"), ("occurred_at", "2026-12-01T09:00:00+00:00"),
    ("occurred_at", "2026-12-01t09:00:00Z"), ("occurred_at", "2026-12-01T09:00:00.1Z"),
    ("priced_at", "2026-12-01 09:00:00Z"), ("priced_at", 0), ("type", "credits.granted"),
    ("type", None), ("extra", 1),
]  # fmt: skip


@given(debits, st.sampled_from(_REPLACEMENTS), st.booleans())
def test_the_ledger_reader_accepts_what_the_ledger_model_accepts(
    entry: CreditsDebited, replacement: tuple[str, Any], without_type: bool
) -> None:
    name, value = replacement
    fields = json.loads(dump(entry))
    fields[name] = value
    if without_type:
        del fields["type"]
    for raw in (
        json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode(),
        json.dumps(fields).encode(),
        json.dumps(dict(reversed(list(fields.items()))), separators=(",", ":")).encode(),
    ):
        ledger_agrees(raw)


@given(debits)
def test_the_projector_writes_a_debit_as_it_wrote_the_model(entry: CreditsDebited) -> None:
    """The journal row and digest from the Struct (by field name) equal those of the model."""
    raw = dump(entry)
    record = read_message(raw, 3, 7, VERIFY_KEYS)
    if isinstance(record, RejectedMessage):  # PostgreSQL text cannot hold NUL
        assert record.reason == "refused" and b"\\u0000" in raw
        return
    assert isinstance(record.entry, CreditsDebitedStruct)
    reference = SourcedEntry(entry, raw, 3, 7)
    assert record.digest == reference.digest
    assert journal_copy([record]) == journal_copy([reference])


def test_an_absent_or_null_hold_id_is_left_out_of_the_bytes() -> None:
    for hold in ({}, {"hold_id": None}):
        decoded = decode_usage(json.dumps({**BASE, **hold}).encode())
        assert b"hold_id" not in encode(decoded)
    held = decode_usage(json.dumps({**BASE, "hold_id": "h-1"}).encode())
    assert held.hold_id == "h-1" and b'"hold_id":"h-1"' in encode(held)
    at = datetime(2026, 11, 27, 19, tzinfo=UTC)
    fields = {k: v for k, v in BASE.items() if k != "type"} | {"occurred_at": at}
    assert encode(UsageRecordedStruct(**fields)).endswith(b'"request_id":null}')


@pytest.mark.parametrize(
    "raw",
    [b"[" * 100_000, b'{"type":"credits.granted","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"],
    ids=["array", "in a grant"],
)
def test_json_nested_past_the_recursion_limit_is_refused_not_raised(raw: bytes) -> None:
    """msgspec parses by recursion: poison nested that deep is a rejection like any other."""
    book = load_pricebook(DEFAULT_PRICEBOOK)
    now = datetime(2026, 11, 27, 20, tzinfo=UTC)
    rejected = price_message(UsageMessage("usage.v1", 0, 0, None, raw), book, now)
    assert isinstance(rejected, UsageRejected) and rejected.error == "invalid_json"
    assert isinstance(read_message(raw, 0, 0, VERIFY_KEYS), RejectedMessage)
