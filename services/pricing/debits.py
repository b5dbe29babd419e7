"""One raw usage.v1 message in, one CreditsDebited or UsageRejected out. Pure.

Never raises for bad input: anything that cannot be priced becomes a rejection carrying the
original bytes, so the pipeline keeps going and nothing is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from json.encoder import encode_basestring
from typing import NamedTuple, Protocol
from uuid import UUID

from pydantic import ValidationError

from schemas.events import (
    CreditsDebited,
    RejectionCode,
    SourcePosition,
    UsageRecorded,
    UsageRejected,
)
from services.pricing.debit_json import encode_debit, hold_fragment, timestamp_text, uuid5_text
from services.pricing.pricebook import PriceBook, Rejection, Tier
from services.pricing.usage_json import PlainUsage, read_plain_usage

# Fixed forever: changing it would give every replayed usage event a new entry_id.
DEBIT_NAMESPACE = UUID("5b0f3c52-8a7e-4d1b-9c0e-6f2a1d3e4b57")
# Large enough for any real usage event, small enough that a DLQ message stays far below
# one producer batch (service.MAX_BATCH_BYTES) and the broker's message limit: a payload is
# cut to this many characters, and further when its JSON text would pass MAX_PAYLOAD_BYTES
# (a control character takes 6 bytes there, \u0000).
MAX_PAYLOAD_CHARS = 64 * 1024
MAX_PAYLOAD_BYTES = 128 * 1024
MAX_DETAIL_CHARS = 2048


def debit_entry_id(event_id: str) -> UUID:
    """The debit's entry_id: uuid5(DEBIT_NAMESPACE, event_id), so a redelivered or re-sent
    usage event yields the same entry and the projector settles it."""
    return UUID(uuid5_text(DEBIT_NAMESPACE, event_id))


class EncodedDebit(NamedTuple):
    """A CreditsDebited already serialized, with the account it is keyed by."""

    account_id: str
    value: bytes


class ConsumedRecord(Protocol):
    """The fields of aiokafka's ConsumerRecord that pricing reads."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


@dataclass(frozen=True)
class UsageMessage:
    """A usage.v1 message and where it was read, for callers without a ConsumerRecord."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def price_message(
    record: ConsumedRecord, book: PriceBook, now: datetime
) -> CreditsDebited | UsageRejected:
    """The model form of `price_usage`, for callers that want objects rather than bytes."""
    outcome = price_usage(record, book, now, timestamp_text(now))
    if isinstance(outcome, UsageRejected):
        return outcome
    return CreditsDebited.model_validate_json(outcome.value)


def price_usage(
    record: ConsumedRecord, book: PriceBook, now: datetime, now_text: str
) -> EncodedDebit | UsageRejected:
    """`now_text` is `now` formatted once per batch; the hot path should not redo it."""
    value = record.value
    if value:
        plain = read_plain_usage(value)
        if plain is not None:
            debit = encode_priced(plain, book, now_text)
            if debit is not None:
                return debit
    # Anything unusual, and every rejection, takes the authoritative pydantic way.
    return price_validated(record, book, now, now_text)


def encode_priced(usage: PlainUsage, book: PriceBook, now_text: str) -> EncodedDebit | None:
    """The debit of an event read_plain_usage accepted, as the bytes encode_debit writes
    (unit tests compare them); None when the price book rejects it."""
    priced = book.price(
        model=usage.model,
        input_tokens=usage.input_tokens,
        cached_input_tokens=usage.cached_input_tokens,
        output_tokens=usage.output_tokens,
        at=usage.occurred_at,
    )
    if priced is None:
        return None
    version, tier, credits = priced
    model_tier, price_version = _fragments(version.version, usage.model, tier)
    event_id = usage.event_id
    # account_id keeps ACCOUNT_ID_PATTERN (checked), so it needs no JSON escaping.
    encoded = (
        '{"type":"credits.debited","schema_version":1,'
        f'"entry_id":"{uuid5_text(DEBIT_NAMESPACE, event_id)}",'
        f'"account_id":"{usage.account_id}","usage_event_id":{encode_basestring(event_id)},'
        f'{model_tier}"billable_tokens":{usage.input_tokens + usage.output_tokens},'
        f'"credits":{credits},{price_version}"occurred_at":"{usage.occurred_text}",'
        f'{hold_fragment(usage.hold_id)}"priced_at":"{now_text}"}}'
    ).encode()
    return EncodedDebit(usage.account_id, encoded)


@lru_cache(maxsize=1024)
def _fragments(version: str, model: str, tier: Tier) -> tuple[str, str]:
    """The debit's JSON for model, tier and multiplier, and for price_version: the same for
    every event priced at one tier of one version, so written once."""
    return (
        f'"model":{encode_basestring(model)},"tier":{encode_basestring(tier.name)},'
        f'"multiplier":"{tier.multiplier}",',
        f'"price_version":{encode_basestring(version)},',
    )


def price_validated(
    record: ConsumedRecord, book: PriceBook, now: datetime, now_text: str
) -> EncodedDebit | UsageRejected:
    """price_usage with pydantic validating the event: the authority on what is invalid."""
    value = record.value
    if value is None:
        return reject(
            record,
            "invalid_json",
            "empty message: a tombstone (null value), not a usage event",
            now,
        )
    if not value:
        return reject(record, "invalid_json", "empty message (no bytes)", now)
    try:
        usage = UsageRecorded.model_validate_json(value)
    except ValidationError as error:
        code, detail = classify(error)
        return reject(record, code, detail, now)
    quote = book.quote(
        model=usage.model,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cached_input_tokens=usage.cached_input_tokens,
        at=usage.occurred_at,
    )
    if isinstance(quote, Rejection):
        return reject(record, quote.code, quote.detail, now)
    encoded = encode_debit(
        entry_id=uuid5_text(DEBIT_NAMESPACE, usage.event_id),
        account_id=usage.account_id,
        usage_event_id=usage.event_id,
        model=usage.model,
        tier=quote.tier,
        multiplier=quote.multiplier,
        billable_tokens=quote.billable_tokens,
        credits=quote.credits,
        price_version=quote.price_version,
        occurred_at=usage.occurred_at,
        priced_at=now_text,
        hold_id=usage.hold_id,
    )
    return EncodedDebit(usage.account_id, encoded)


def classify(error: ValidationError) -> tuple[RejectionCode, str]:
    errors = error.errors(include_url=False, include_input=False)
    first = errors[0]
    if first["type"] == "json_invalid":
        return "invalid_json", f"not valid UTF-8 JSON: {first['msg']}"
    if first["type"] == "model_type" and not first["loc"]:
        return "invalid_json", "the JSON value is not an object"
    problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(event)'}: {e['msg']}" for e in errors)
    return "invalid_event", _cap(f"not a valid usage.recorded event: {problems}")


def reject(
    record: ConsumedRecord, code: RejectionCode, detail: str, now: datetime
) -> UsageRejected:
    raw = record.value or b""
    text = raw.decode("utf-8", errors="replace")
    payload = cut_payload(text)
    if len(payload) < len(text):
        detail += (
            f" (payload cut to its first {len(payload)} characters; "
            f"the message had {len(raw)} bytes)"
        )
    return UsageRejected(
        error=code,
        detail=detail,
        payload=payload,
        source=SourcePosition(topic=record.topic, partition=record.partition, offset=record.offset),
        rejected_at=now,
    )


def cut_payload(text: str) -> str:
    """The payload as the DLQ carries it: `text`, or its start when it is too long."""
    payload = text[:MAX_PAYLOAD_CHARS]
    # No character takes more than 6 bytes in JSON, so a short payload is never measured.
    too_long = len(payload) * 6 > MAX_PAYLOAD_BYTES
    if too_long and len(encode_basestring(payload).encode()) > MAX_PAYLOAD_BYTES:
        payload = payload[: MAX_PAYLOAD_BYTES // 6]
    return payload


def _cap(detail: str) -> str:
    if len(detail) <= MAX_DETAIL_CHARS:
        return detail
    return detail[: MAX_DETAIL_CHARS - 1] + "…"
