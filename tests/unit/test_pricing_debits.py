"""One usage message into one debit or one rejection; the batch into partitions and offsets."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas.events import CreditsDebited, UsageRecorded, UsageRejected, dump
from services.common.kafka import partition_for
from services.common.settings import DEFAULT_PRICEBOOK
from services.pricing.admission import DEFAULT_DEDUP_WINDOW, judge_usage, received_at
from services.pricing.batch import MAX_DLQ_KEY_BYTES, price_batch
from services.pricing.debits import (
    DEBIT_NAMESPACE,
    MAX_PAYLOAD_BYTES,
    MAX_PAYLOAD_CHARS,
    EncodedDebit,
    UsageMessage,
    debit_entry_id,
    debit_entry_text,
    price_message,
    price_usage,
    uuid5_text,
)
from services.pricing.pricebook import Rejection, load_pricebook
from tests.factories import repeats_a_key, usage_messages

pytestmark = pytest.mark.unit

BOOK = load_pricebook(DEFAULT_PRICEBOOK)
NOW = datetime(2026, 11, 27, 20, 0, 0, 123456, tzinfo=UTC)
identifiers = st.text(min_size=1, max_size=128)
account_ids = st.from_regex(r"[A-Za-z0-9._:@-]{1,128}", fullmatch=True)
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
}


def message(value: bytes | None, offset: int = 7, key: bytes | None = b"acct-42") -> UsageMessage:
    return UsageMessage(topic="usage.v1", partition=3, offset=offset, key=key, value=value)


def usage(**changes: Any) -> bytes:
    return json.dumps({**USAGE, **changes}).encode()


def test_design_example_becomes_the_design_debit() -> None:
    debit = price_message(message(usage()), BOOK, NOW)
    assert debit == CreditsDebited(
        entry_id=uuid.uuid5(DEBIT_NAMESPACE, f"acct-42\n{USAGE['event_id']}"),
        account_id="acct-42",
        usage_event_id=USAGE["event_id"],
        model="mimo-v2-pro",
        tier="256k",
        multiplier=Decimal(2),
        billable_tokens=1500,
        credits=3000,
        price_version="2026-04-03",
        occurred_at=datetime(2026, 11, 27, 19, tzinfo=UTC),
        priced_at=NOW,
    )


def test_tts_gives_a_zero_credit_debit() -> None:
    debit = price_message(message(usage(model="mimo-v2-tts", output_tokens=10**9)), BOOK, NOW)
    assert isinstance(debit, CreditsDebited)
    assert (debit.credits, debit.tier, debit.multiplier) == (0, "any", Decimal(0))


@given(account_ids, identifiers)
def test_entry_id_is_uuid5_of_account_newline_event_id_and_stable(account: str, event: str) -> None:
    expected = uuid.uuid5(DEBIT_NAMESPACE, f"{account}\n{event}")
    assert debit_entry_id(account, event) == expected == debit_entry_id(account, event)
    assert debit_entry_text(account, event) == str(expected)


@given(account_ids, account_ids, identifiers, identifiers)
def test_entry_ids_differ_when_account_or_event_id_differs(a: str, b: str, e: str, f: str) -> None:
    # An account id holds no line break, so "a\ne" names one pair only.
    assert (debit_entry_id(a, e) == debit_entry_id(b, f)) == ((a, e) == (b, f))


def test_the_same_event_id_on_two_accounts_is_two_debits() -> None:
    one = price_message(message(usage(account_id="acct-1")), BOOK, NOW)
    two = price_message(message(usage(account_id="acct-2")), BOOK, NOW)
    assert isinstance(one, CreditsDebited) and isinstance(two, CreditsDebited)
    assert one.usage_event_id == two.usage_event_id and one.entry_id != two.entry_id
    assert one.entry_id == debit_entry_id("acct-1", USAGE["event_id"])


@pytest.mark.parametrize(
    ("value", "code", "detail"),
    [
        (None, "invalid_json", "empty"),
        (b"", "invalid_json", "empty"),
        (b"{not json", "invalid_json", "JSON"),
        (b'{"a": "\xff\xfe"}', "invalid_json", "UTF-8"),
        (b"[1, 2]", "invalid_json", "not an object"),
        (b"42", "invalid_json", "not an object"),
        (usage(input_tokens=-1), "invalid_event", "input_tokens"),
        (usage(input_tokens="12"), "invalid_event", "input_tokens"),
        (usage(colour="red"), "invalid_event", "colour"),
        (usage(account_id="bad id!"), "invalid_event", "account_id"),
        (usage(occurred_at="2026-11-27T19:00:00"), "invalid_event", "occurred_at"),
        (usage(cached_input_tokens=1201), "invalid_event", "cached_input_tokens"),
        (usage(model="gpt-9"), "unknown_model", "gpt-9"),
        (usage(occurred_at="2020-01-01T00:00:00Z"), "no_price_version", "no price"),
        (usage(input_tokens=1_048_577), "exceeds_context", "1048576"),
        (usage(model="mimo-v2-omni", input_tokens=262_145), "exceeds_context", "262144"),
    ],
)
def test_each_problem_is_a_rejection_with_its_code(
    value: bytes | None, code: str, detail: str
) -> None:
    rejected = price_message(message(value), BOOK, NOW)
    assert isinstance(rejected, UsageRejected)
    assert (rejected.error, rejected.rejected_at) == (code, NOW)
    assert detail in rejected.detail
    assert (rejected.source.topic, rejected.source.partition, rejected.source.offset) == (
        "usage.v1", 3, 7,
    )  # fmt: skip
    assert rejected.payload == (value or b"").decode("utf-8", errors="replace")


def test_a_huge_payload_is_cut_and_the_detail_says_so() -> None:
    value = b'{"x": "' + b"a" * (MAX_PAYLOAD_CHARS * 2) + b'"'
    rejected = price_message(message(value), BOOK, NOW)
    assert isinstance(rejected, UsageRejected)
    assert len(rejected.payload) == MAX_PAYLOAD_CHARS
    assert f"cut to its first {MAX_PAYLOAD_CHARS} characters" in rejected.detail
    assert str(len(value)) in rejected.detail


def test_a_payload_of_control_characters_is_cut_to_fit_one_produce_request() -> None:
    value = b'{"x": "' + b"\x01" * (MAX_PAYLOAD_CHARS - 10) + b'"'
    rejected = price_message(message(value), BOOK, NOW)
    assert isinstance(rejected, UsageRejected)
    assert len(dump(rejected)) < MAX_PAYLOAD_BYTES + 4096
    assert rejected.payload.startswith('{"x": "\x01') and "payload cut" in rejected.detail


def test_a_tombstone_is_rejected_as_not_json() -> None:
    rejected = price_message(message(None), BOOK, NOW)
    assert isinstance(rejected, UsageRejected)
    assert (rejected.error, rejected.payload) == ("invalid_json", "")
    assert "tombstone" in rejected.detail


def test_a_huge_key_is_not_copied_to_the_dlq_but_keeps_its_partition() -> None:
    key = b"k" * (MAX_DLQ_KEY_BYTES * 1000)
    records = [UsageMessage("usage.v1", 2, 5, key, b"junk")]
    priced = price_batch(records, BOOK, NOW, ledger_partitions=6, dlq_partitions=6)
    [(dlq_key, value)] = priced.dlq[partition_for(key, 6)]
    assert dlq_key is None and len(value) < 4096
    assert f"key of {len(key)} bytes is not kept" in json.loads(value)["detail"]


@given(st.text(min_size=1, max_size=128))
def test_uuid5_text_is_uuid5(name: str) -> None:
    assert uuid5_text(DEBIT_NAMESPACE, name) == str(uuid.uuid5(DEBIT_NAMESPACE, name))


@given(usage_messages())
def test_what_pricing_writes_is_the_debit_models_own_json(value: bytes) -> None:
    priced = price_usage(message(value), BOOK, NOW)
    if isinstance(priced, EncodedDebit):
        assert dump(CreditsDebited.model_validate_json(priced.value)) == priced.value


# Kafka timestamps around the generated occurred_at, and exactly at the window's edges.
_MS = int(NOW.timestamp() * 1000)
_EDGES = [_MS + d for d in (0, 24 * 3600_000, -30 * 86_400_000)]
kafka_timestamps = st.one_of(
    st.none(),
    st.just(-1),
    st.integers(_MS - 400 * 86_400_000, _MS + 400 * 86_400_000),
    st.sampled_from(_EDGES).flatmap(lambda ms: st.integers(ms - 2, ms + 2)),
)


@settings(max_examples=800)
@given(usage_messages(), kafka_timestamps)
def test_pricing_judges_an_event_as_post_usage_does(value: bytes, timestamp: int | None) -> None:
    """The API judges the model with judge_usage, pricing the codec's Struct: one verdict."""
    priced = price_usage(UsageMessage("usage.v1", 3, 7, b"k", value, timestamp), BOOK, NOW)
    try:
        usage = UsageRecorded.model_validate_json(value)
    except ValidationError:
        assert isinstance(priced, UsageRejected)
        assert priced.error in ("invalid_json", "invalid_event")
        return
    assume(not repeats_a_key(value))  # the codec checks every value of a repeated key
    verdict = judge_usage(usage, BOOK, received_at(timestamp), DEFAULT_DEDUP_WINDOW)
    if isinstance(verdict, Rejection):
        assert isinstance(priced, UsageRejected)
        assert (priced.error, priced.detail) == (verdict.code, verdict.detail)
    else:
        assert isinstance(priced, EncodedDebit)
        debit = CreditsDebited.model_validate_json(priced.value)
        assert (debit.credits, debit.tier, debit.price_version) == (
            verdict.credits, verdict.tier, verdict.price_version,
        )  # fmt: skip


@given(st.binary(min_size=1, max_size=200), st.integers(1, 100))
def test_partition_matches_kafkas_default_partitioner(key: bytes, partitions: int) -> None:
    everything = list(range(partitions))
    assert partition_for(key, partitions) == DefaultPartitioner()(key, everything, everything)


def test_batch_keys_debits_by_account_and_commits_the_next_offsets() -> None:
    records = [
        UsageMessage("usage.v1", p, o, None, usage(event_id=f"e-{p}-{o}", account_id=f"a{o % 3}"))
        for p in (0, 4)
        for o in range(10, 20)
    ]
    records.append(UsageMessage("usage.v1", 4, 20, b"a1", b"junk"))
    priced = price_batch(records, BOOK, NOW, ledger_partitions=6, dlq_partitions=6)
    assert priced.next_offsets == {("usage.v1", 0): 20, ("usage.v1", 4): 21}
    assert (priced.debited, len(priced.rejections), priced.size) == (20, 1, 21)
    for partition, messages in priced.ledger.items():
        for key, value in messages:
            assert key is not None and partition == partition_for(key, 6)
            assert CreditsDebited.model_validate_json(value).account_id == key.decode()
    ordered = [json.loads(v)["usage_event_id"] for _, v in priced.ledger[partition_for(b"a0", 6)]]
    assert ordered == [e for e in ordered if e.startswith("e-0")] + [
        e for e in ordered if e.startswith("e-4")
    ]
    assert priced.dlq == {partition_for(b"a1", 6): [(b"a1", dump(priced.rejections[0]))]}
