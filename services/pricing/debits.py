"""One raw usage.v1 message in, one CreditsDebited or UsageRejected out. Pure.

Never raises for bad input: anything that cannot be priced becomes a rejection carrying the
original bytes, so the pipeline keeps going and nothing is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from json.encoder import encode_basestring
from typing import NamedTuple, Protocol
from uuid import UUID

from pydantic import ValidationError

from schemas.debit_json import (
    debit_bytes,
    encode_debit,
    hold_fragment,
    model_fields,
    timestamp_text,
    uuid5_text,
)
from schemas.events import (
    CreditsDebited,
    RejectionCode,
    SourcePosition,
    UsageRecorded,
    UsageRejected,
)
from schemas.usage_json import PlainUsage, read_plain_usage
from services.pricing.admission import DEFAULT_DEDUP_WINDOW, in_time, judge_usage, received_at
from services.pricing.pricebook import PriceBook, Rejection, Tier

# Fixed forever: changing it would give every replayed usage event a new entry_id.
DEBIT_NAMESPACE = UUID("5b0f3c52-8a7e-4d1b-9c0e-6f2a1d3e4b57")
# Large enough for any real usage event, small enough that a DLQ message stays far below
# one producer batch (service.MAX_BATCH_BYTES) and the broker's message limit: a payload is
# cut to this many characters, and further when its JSON text would pass MAX_PAYLOAD_BYTES
# (a control character takes 6 bytes there, \u0000).
MAX_PAYLOAD_CHARS = 64 * 1024
MAX_PAYLOAD_BYTES = 128 * 1024
MAX_DETAIL_CHARS = 2048


def debit_entry_text(account_id: str, event_id: str) -> str:
    """The debit's entry_id: uuid5(DEBIT_NAMESPACE, account_id + "\n" + event_id), so a
    redelivered or re-sent usage event yields the same entry and the projector settles it,
    while the same event_id on two accounts (event ids are unique per account) gives two.
    An account id never holds a line break (ACCOUNT_ID_PATTERN), so no two pairs meet."""
    return uuid5_text(DEBIT_NAMESPACE, f"{account_id}\n{event_id}")


def debit_entry_id(account_id: str, event_id: str) -> UUID:
    """debit_entry_text as a UUID."""
    return UUID(debit_entry_text(account_id, event_id))


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
    # Milliseconds since the epoch (the broker's or producer's clock); -1 when absent. The
    # time an event is judged against (services/pricing/admission.py), so pricing stays a
    # pure function of the log.
    @property
    def timestamp(self) -> int | None: ...


@dataclass(frozen=True)
class UsageMessage:
    """A usage.v1 message and where it was read, for callers without a ConsumerRecord."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int | None = None  # None: not judged by time


def price_message(
    record: ConsumedRecord,
    book: PriceBook,
    now: datetime,
    window: timedelta = DEFAULT_DEDUP_WINDOW,
) -> CreditsDebited | UsageRejected:
    """The model form of `price_usage`, for callers that want objects rather than bytes."""
    outcome = price_usage(record, book, now, timestamp_text(now), window)
    if isinstance(outcome, UsageRejected):
        return outcome
    return CreditsDebited.model_validate_json(outcome.value)


def price_usage(
    record: ConsumedRecord,
    book: PriceBook,
    now: datetime,
    now_text: str,
    window: timedelta = DEFAULT_DEDUP_WINDOW,
) -> EncodedDebit | UsageRejected:
    """`now_text` is `now` formatted once per batch; the hot path should not redo it.
    `now` only stamps priced_at and rejected_at: what is billed depends on the record alone
    (its bytes and its Kafka timestamp), so a replay decides the same."""
    value = record.value
    if value:
        plain = read_plain_usage(value)
        # Out of time, or not priced: price_validated says why (judge_time).
        bounds = in_time(record.timestamp, window)
        if plain is not None and (bounds is None or bounds[0] <= plain.occurred_at <= bounds[1]):
            debit = encode_priced(plain, book, now_text)
            if debit is not None:
                return debit
    # Anything unusual, and every rejection, takes the authoritative pydantic way.
    return price_validated(record, book, now, now_text, window)


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
    encoded = debit_bytes(
        debit_entry_text(usage.account_id, event_id),
        f'"{usage.account_id}"',
        encode_basestring(event_id),
        model_tier,
        usage.input_tokens + usage.output_tokens,
        credits,
        price_version,
        usage.occurred_text,
        hold_fragment(usage.hold_id),
        now_text,
    )
    return EncodedDebit(usage.account_id, encoded)


@lru_cache(maxsize=1024)
def _fragments(version: str, model: str, tier: Tier) -> tuple[str, str]:
    """The debit's JSON for model, tier and multiplier, and for price_version: the same for
    every event priced at one tier of one version, so written once."""
    return model_fields(model, tier.name, tier.multiplier), encode_basestring(version)


def price_validated(
    record: ConsumedRecord,
    book: PriceBook,
    now: datetime,
    now_text: str,
    window: timedelta = DEFAULT_DEDUP_WINDOW,
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
    quote = judge_usage(usage, book, received_at(record.timestamp), window)
    if isinstance(quote, Rejection):
        return reject(record, quote.code, quote.detail, now)
    encoded = encode_debit(
        entry_id=debit_entry_text(usage.account_id, usage.event_id),
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
