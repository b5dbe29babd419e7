"""The hot path's events as msgspec Structs: one codec, reading and writing, per event.

`usage.recorded` (read by pricing) and `credits.debited` (written by pricing, read by the
projector, the audit and the rebuild) are read and written here and nowhere else. The
pydantic models of schemas/events.py stay the contract's definition (the HTTP API and the
JSON Schemas of schemas/json/ come from them): every limit below is read from them
(schemas/limits.py), and tests/unit/test_codec.py holds the two equal, field by field, on
the inputs they accept and the bytes they write.

msgspec checks types and limits in C while it parses; on the project's own messages it
reads a usage event about three times as fast as pydantic (benchmarks/codec.py). Fields are
keyword-only and in the models' order, so a Struct writes the bytes the model writes.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal
from typing import Annotated, ClassVar, Literal
from uuid import UUID

import msgspec
from msgspec import UNSET, Meta, UnsetType
from msgspec.structs import force_setattr
from pydantic import BaseModel

from schemas.events import (
    CreditsAdjusted,
    CreditsDebited,
    CreditsGranted,
    EventTime,
    LedgerEntry,
    UsageRecorded,
    check_cached_within_input,
    check_multiplier,
    parse_ledger_entry,
)
from schemas.limits import int_range, text_length, text_pattern


def _text(model: type[BaseModel], name: str) -> Meta:
    low, high = text_length(model, name)
    return Meta(min_length=low, max_length=high)


def _pattern(model: type[BaseModel], name: str) -> Meta:
    # msgspec searches with Python's re, whose `$` also matches before a final newline.
    return Meta(pattern=f"^(?:{text_pattern(model, name).pattern})\\Z")


def _range(model: type[BaseModel], name: str) -> Meta:
    low, high = int_range(model, name)
    return Meta(ge=low, le=high)


def _tag(model: type[BaseModel]) -> str:
    return str(model.model_fields["type"].default)


class UsageRecordedStruct(
    msgspec.Struct,
    tag_field="type",
    tag=_tag(UsageRecorded),
    kw_only=True,
    frozen=True,
    forbid_unknown_fields=True,
):
    """schemas.events.UsageRecorded. A null hold_id reads as an absent one, which is not
    written (the model leaves it out of its JSON too)."""

    type: ClassVar[str] = _tag(UsageRecorded)
    schema_version: Literal[1] = 1
    event_id: Annotated[str, _text(UsageRecorded, "event_id")]
    account_id: Annotated[str, _pattern(UsageRecorded, "account_id")]
    model: Annotated[str, _text(UsageRecorded, "model")]
    input_tokens: Annotated[int, _range(UsageRecorded, "input_tokens")]
    cached_input_tokens: Annotated[int, _range(UsageRecorded, "cached_input_tokens")] = 0
    output_tokens: Annotated[int, _range(UsageRecorded, "output_tokens")]
    occurred_at: EventTime
    gateway_id: Annotated[str, _text(UsageRecorded, "gateway_id")]
    request_id: Annotated[str, _text(UsageRecorded, "request_id")] | None = None
    hold_id: Annotated[str, _text(UsageRecorded, "hold_id")] | UnsetType | None = UNSET

    def __post_init__(self) -> None:
        check_cached_within_input(self.cached_input_tokens, self.input_tokens)
        if self.hold_id is None:
            force_setattr(self, "hold_id", UNSET)


class CreditsDebitedStruct(
    msgspec.Struct,
    tag_field="type",
    tag=_tag(CreditsDebited),
    kw_only=True,
    frozen=True,
    forbid_unknown_fields=True,
):
    """schemas.events.CreditsDebited; hold_id as in UsageRecordedStruct."""

    type: ClassVar[str] = _tag(CreditsDebited)
    schema_version: Literal[1] = 1
    entry_id: UUID
    account_id: Annotated[str, _pattern(CreditsDebited, "account_id")]
    usage_event_id: Annotated[str, _text(CreditsDebited, "usage_event_id")]
    model: Annotated[str, _text(CreditsDebited, "model")]
    tier: Annotated[str, _text(CreditsDebited, "tier")]
    multiplier: Decimal
    billable_tokens: Annotated[int, _range(CreditsDebited, "billable_tokens")]
    credits: Annotated[int, _range(CreditsDebited, "credits")]
    price_version: Annotated[str, _text(CreditsDebited, "price_version")]
    occurred_at: EventTime
    hold_id: Annotated[str, _text(CreditsDebited, "hold_id")] | UnsetType | None = UNSET
    priced_at: EventTime

    def __post_init__(self) -> None:
        check_multiplier(self.multiplier)
        if self.hold_id is None:
            force_setattr(self, "hold_id", UNSET)


# Grants and adjustments are not on the hot path: the ledger reader below only learns their
# type here (every other field passes unread) and hands them to their pydantic models.
class _Granted(msgspec.Struct, tag_field="type", tag=_tag(CreditsGranted)):
    pass


class _Adjusted(msgspec.Struct, tag_field="type", tag=_tag(CreditsAdjusted)):
    pass


# A ledger entry as its readers hold it: a debit as its Struct, any other entry as its model.
Entry = LedgerEntry | CreditsDebitedStruct
# The debit classes, the Struct first: it is the one the projector meets.
DEBITS = (CreditsDebitedStruct, CreditsDebited)

_USAGE = msgspec.json.Decoder(UsageRecordedStruct)
# On ledger.v1 `type` decides which entry a message is, so there it is required.
_LEDGER = msgspec.json.Decoder(CreditsDebitedStruct | _Granted | _Adjusted)
_ENCODER = msgspec.json.Encoder()
# The digest of a debit leaves out priced_at, its last field: pricing re-stamps it when it
# prices a re-sent usage event, and the debit is the same.
_PRICED_AT = b',"priced_at":'


def decode_usage(raw: bytes) -> UsageRecordedStruct:
    """Raises msgspec.ValidationError for JSON that breaks a rule, msgspec.DecodeError for
    anything that is not JSON."""
    try:
        return _USAGE.decode(raw)
    except RecursionError as error:
        raise _too_deep() from error


def decode_ledger_entry(raw: bytes) -> Entry:
    """A debit as its Struct, a grant or an adjustment as its model. Raises msgspec's
    DecodeError (or its ValidationError) or pydantic's ValidationError."""
    try:
        entry = _LEDGER.decode(raw)
    except RecursionError as error:
        raise _too_deep() from error
    if isinstance(entry, CreditsDebitedStruct):
        return entry
    return parse_ledger_entry(raw)


def json_error(raw: bytes) -> msgspec.DecodeError | None:
    """Why `raw` is not JSON at all; None when it is. The codecs check their rules while
    they parse, so a rule may break before the JSON does: this tells the two apart."""
    try:
        msgspec.json.decode(raw)
    except msgspec.DecodeError as error:
        return error
    except RecursionError:
        return _too_deep()
    return None


def _too_deep() -> msgspec.DecodeError:
    # msgspec parses by recursion; a message nested deeper than Python's limit is poison,
    # refused like any other input that is not JSON the ledger can read.
    return msgspec.DecodeError("JSON is malformed: nested too deeply")


def encode(event: UsageRecordedStruct | CreditsDebitedStruct) -> bytes:
    """The event's JSON: the bytes schemas.events.dump writes for its model."""
    return _ENCODER.encode(event)


def timestamp_text(at: datetime) -> str:
    """A time as the codecs write it: RFC 3339, "Z" for UTC."""
    return _ENCODER.encode(at)[1:-1].decode()


def debit_digest(debit: CreditsDebitedStruct) -> str:
    """sha256 of the debit's JSON without priced_at (the projector's content digest)."""
    encoded = _ENCODER.encode(debit)
    return hashlib.sha256(encoded[: encoded.rindex(_PRICED_AT)] + b"}").hexdigest()


def hold_of(debit: CreditsDebitedStruct | CreditsDebited) -> str | None:
    """The debit's hold_id, None when it has none (a Struct holds UNSET then)."""
    hold_id = debit.hold_id
    return hold_id if isinstance(hold_id, str) else None


__all__ = [
    "DEBITS",
    "CreditsDebitedStruct",
    "Entry",
    "UsageRecordedStruct",
    "debit_digest",
    "decode_ledger_entry",
    "decode_usage",
    "encode",
    "hold_of",
    "json_error",
    "timestamp_text",
]
