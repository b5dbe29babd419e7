"""The debit codec's reader (the projector's hot path) against pydantic, the authority.

Whatever bytes it is given, `read_plain_debit` either declines (pydantic decides) or gives
exactly what pydantic gives: the same values, the same canonical JSON (the bytes
themselves) and the same content digest. And the projector's record is the same whichever
way a message was read.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas.debit_json import read_plain_debit
from schemas.events import CreditsDebited, dump, parse_ledger_entry
from services.projector.columns import journal_copy
from services.projector.ledger import RejectedMessage, SourcedEntry, content_digest, read_message
from tests.entry_keys import VERIFY_KEYS

pytestmark = pytest.mark.unit

_zones = st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(0))])
_moments = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=_zones
)
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
    occurred_at=_moments,
    hold_id=st.one_of(st.none(), _identifiers),
    priced_at=_moments,
)


def agrees_with_pydantic(raw: bytes) -> None:
    read = read_plain_debit(raw)
    if read is None:
        return
    entry = parse_ledger_entry(raw)  # what the reader takes, pydantic takes
    assert isinstance(entry, CreditsDebited)
    assert entry.model_dump_json().encode() == raw
    debit, fields, digest = read
    for name in CreditsDebited.model_fields:
        assert str(getattr(debit, name)) == str(getattr(entry, name)), name
    assert (debit.occurred_at, debit.priced_at) == (entry.occurred_at, entry.priced_at)
    assert fields.groupdict() == texts(orjson.loads(raw))
    assert digest == content_digest(entry)


def texts(fields: dict[str, Any]) -> dict[str, str | None]:
    """The fields as the reader gives them: each value's JSON text, unquoted."""
    return {"hold_id": None} | {name: None if v is None else str(v) for name, v in fields.items()}


def fields_of(record: SourcedEntry) -> dict[str, Any]:
    fields = record.fields
    return fields if isinstance(fields, dict) else fields.groupdict()


@given(debits)
def test_every_valid_debit_reads_as_pydantic_reads_it(entry: CreditsDebited) -> None:
    raw = dump(entry)
    agrees_with_pydantic(raw)
    plain = "\\" not in raw.decode() and entry.multiplier == entry.multiplier.normalize()
    if plain and "E" not in str(entry.multiplier):
        assert read_plain_debit(raw) is not None  # the usual debit takes the hot path


_REPLACEMENTS: list[tuple[str, Any]] = [
    ("credits", -1), ("credits", 2**62 + 1), ("credits", 1.0), ("credits", True),
    ("credits", "5"), ("billable_tokens", 10**12 + 1), ("schema_version", 2),
    ("schema_version", True), ("entry_id", "0F8FAD5B-D9CB-569F-A165-70867728950E"),
    ("entry_id", "0f8fad5bd9cb569fa16570867728950e"), ("entry_id", 5), ("account_id", "a b"),
    ("account_id", "a\n"), ("account_id", "x" * 129), ("account_id", 'a"b'), ("model", ""),
    ("tier", "x" * 129), ("hold_id", ""),
    ("hold_id", None), ("hold_id", 7), ("multiplier", "1.5e0"), ("multiplier", 1.5),
    ("multiplier", "-1"), ("multiplier", "NaN"), ("multiplier", "01"),
    ("occurred_at", "2026-12-01T09:00:00"), ("occurred_at", "2026-12-01T09:00:00+00:00"),
    ("occurred_at", "2026-12-01t09:00:00Z"), ("occurred_at", "2026-12-01T09:00:00.1Z"),
    ("priced_at", "2026-12-01 09:00:00Z"), ("priced_at", 0), ("type", "credits.granted"),
    ("extra", 1),
]  # fmt: skip


@given(debits, st.sampled_from(_REPLACEMENTS))
@example(
    CreditsDebited.model_validate(
        {
            "entry_id": "0f8fad5b-d9cb-569f-a165-70867728950e", "account_id": "a",
            "usage_event_id": "u", "model": "m", "tier": "t", "multiplier": "1",
            "billable_tokens": 1, "credits": 1, "price_version": "v",
            "occurred_at": "2026-12-01T09:00:00Z", "priced_at": "2026-12-01T09:00:01Z",
        }
    ),
    ("credits", 1),
)  # fmt: skip
def test_other_spellings_and_invalid_debits_go_to_pydantic(
    entry: CreditsDebited, replacement: tuple[str, Any]
) -> None:
    name, value = replacement
    fields = json.loads(dump(entry))
    fields[name] = value
    for raw in (
        json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode(),
        json.dumps(fields).encode(),  # spaces: valid JSON, not the canonical bytes
        json.dumps(dict(reversed(list(fields.items()))), separators=(",", ":")).encode(),
    ):
        agrees_with_pydantic(raw)
        try:
            parse_ledger_entry(raw)
        except ValidationError:
            assert read_plain_debit(raw) is None


@given(debits)
def test_the_projector_record_is_the_same_whichever_way_it_was_read(
    entry: CreditsDebited,
) -> None:
    raw = dump(entry)
    record = read_message(raw, 3, 7, VERIFY_KEYS)
    if isinstance(record, RejectedMessage):  # the pydantic way refuses NUL (PostgreSQL text)
        assert record.reason == "refused" and b"\\u0000" in raw
        return
    reference = SourcedEntry(entry, raw, 3, 7)
    assert (record.digest, record.canonical) == (reference.digest, reference.canonical)
    assert texts(fields_of(record)) == texts(fields_of(reference))
    assert journal_copy([record]) == journal_copy([reference])  # the same journal row
    assert (record.partition, record.offset, record.raw) == (3, 7, raw)


_VALID = (
    b'{"type":"credits.debited","schema_version":1,"entry_id":"0f8fad5b-d9cb-569f-a165-'
    b'70867728950e","account_id":"a","usage_event_id":"u","model":"m","tier":"t",'
    b'"multiplier":"1","billable_tokens":1,"credits":1,"price_version":"v",'
    b'"occurred_at":"2026-12-01T09:00:00Z","priced_at":"2026-12-01T09:00:01Z"}'
)


def test_an_escape_in_a_field_the_pattern_allows_goes_to_pydantic() -> None:
    """\\u0041 is "A", which the account pattern allows: pydantic reads "aA", but the bytes are
    not the canonical ones (they would be "aA" themselves), so the codec declines them."""
    raw = _VALID.replace(b'"account_id":"a"', b'"account_id":"a\\u0041"')
    assert parse_ledger_entry(raw).account_id == "aA"
    assert read_plain_debit(raw) is None
    assert read_plain_debit(_VALID) is not None


def test_garbage_goes_to_pydantic() -> None:
    for raw in (b"", b"{", b"[]", b'{"type":"credits.debited",', b"\xff", b'{"type":1}'):
        assert read_plain_debit(raw) is None
