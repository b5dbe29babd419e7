"""One raw usage.v1 message in, one CreditsDebited or UsageRejected out. Pure.

Never raises for bad input: anything that cannot be priced becomes a rejection carrying the
original bytes, so the pipeline keeps going and nothing is dropped.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from json.encoder import encode_basestring
from typing import NamedTuple, Protocol
from uuid import UUID

import msgspec
from asyncpg.pgproto.pgproto import UUID as PgUUID

from schemas.codec import CreditsDebitedStruct, decode_usage, encode, json_error
from schemas.events import CreditsDebited, RejectionCode, SourcePosition, UsageRejected
from services.pricing.admission import DEFAULT_DEDUP_WINDOW, judge_usage, received_at
from services.pricing.pricebook import PriceBook, Rejection

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
    """debit_entry_text as asyncpg's UUID: a uuid.UUID (equal, of the same hash and text)
    that C code builds five times faster."""
    entry_id: UUID = PgUUID(debit_entry_text(account_id, event_id))
    return entry_id


def uuid5_text(namespace: UUID, name: str) -> str:
    """str(uuid.uuid5(namespace, name)), without building UUID objects."""
    hashed = _namespace_hash(namespace.int).copy()
    hashed.update(name.encode())
    h = hashed.hexdigest()
    # The 13th hex digit is the version (5); the 17th carries the RFC 4122 variant bits 10.
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


@lru_cache(maxsize=8)
def _namespace_hash(namespace: int) -> hashlib._Hash:
    """sha1 already fed with the namespace (its UUID's int: a UUID hashes in Python code,
    an int in C); copying it saves hashing those bytes again."""
    return hashlib.sha1(namespace.to_bytes(16, "big"))


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
    outcome = price_usage(record, book, now, window)
    if isinstance(outcome, UsageRejected):
        return outcome
    return CreditsDebited.model_validate_json(outcome.value)


def price_usage(
    record: ConsumedRecord,
    book: PriceBook,
    now: datetime,
    window: timedelta = DEFAULT_DEDUP_WINDOW,
) -> EncodedDebit | UsageRejected:
    """The usage event's debit, or why it has none. `now` only stamps priced_at and
    rejected_at: what is billed depends on the record alone (its bytes and its Kafka
    timestamp), so a replay decides the same."""
    value = record.value
    if value is None:
        detail = "empty message: a tombstone (null value), not a usage event"
        return reject(record, "invalid_json", detail, now)
    if not value:
        return reject(record, "invalid_json", "empty message (no bytes)", now)
    try:
        usage = decode_usage(value)
    except msgspec.DecodeError as error:
        return reject(record, *classify(error, value), now)
    quote = judge_usage(usage, book, received_at(record.timestamp), window)
    if isinstance(quote, Rejection):
        return reject(record, quote.code, quote.detail, now)
    debit = CreditsDebitedStruct(
        entry_id=debit_entry_id(usage.account_id, usage.event_id),
        account_id=usage.account_id,
        usage_event_id=usage.event_id,
        model=usage.model,
        tier=quote.tier,
        multiplier=quote.multiplier,
        billable_tokens=quote.billable_tokens,
        credits=quote.credits,
        price_version=quote.price_version,
        occurred_at=usage.occurred_at,
        hold_id=usage.hold_id,
        priced_at=now,
    )
    return EncodedDebit(usage.account_id, encode(debit))


def classify(error: msgspec.DecodeError, value: bytes) -> tuple[RejectionCode, str]:
    """The rejection code and detail of a message the usage codec refused."""
    if isinstance(error, msgspec.ValidationError):
        error = json_error(value) or error
    message = str(error)
    if not isinstance(error, msgspec.ValidationError):
        return "invalid_json", f"not valid UTF-8 JSON: {message}"
    problem, _, path = message.partition(" - at `$")
    if not path and problem.startswith("Expected `object`"):
        return "invalid_json", "the JSON value is not an object"
    where = path.rstrip("`").removeprefix(".") or "(event)"
    return "invalid_event", _cap(f"not a valid usage.recorded event: {where}: {problem}")


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
