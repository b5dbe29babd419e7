"""The JSON of CreditsDebited, written and read without building a pydantic model: the one
module that spells a debit's bytes (pricing writes them, the projector reads them).

Building and dumping the model costs about 7 us per debit, validating and dumping it again
in the projector about 8 us more. `encode_debit` writes the same bytes as
`schemas.events.dump(CreditsDebited(...))` and `read_plain_debit` accepts only bytes that
are exactly that dump of a valid debit (unit tests check both over generated debits), so
what it reads is what pydantic would have read, and the bytes are their own canonical form.
The import-time check below fails loudly if the contract gains, loses or reorders a field;
the limits come from the model itself (schemas/limits.py).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from json.encoder import encode_basestring
from typing import Literal, NamedTuple
from uuid import UUID

from schemas.events import CreditsDebited, LedgerEntry
from schemas.limits import int_range, text_length, text_pattern

FIELDS = (
    "type",
    "schema_version",
    "entry_id",
    "account_id",
    "usage_event_id",
    "model",
    "tier",
    "multiplier",
    "billable_tokens",
    "credits",
    "price_version",
    "occurred_at",
    "hold_id",
    "priced_at",
)
if tuple(CreditsDebited.model_fields) != FIELDS:
    raise ImportError("CreditsDebited changed: update schemas/debit_json.py")

_ACCOUNT = text_pattern(CreditsDebited, "account_id")
_IDENTIFIER = {name: text_length(CreditsDebited, name) for name in ("usage_event_id", "model")}
_IDENTIFIER |= {name: text_length(CreditsDebited, name) for name in ("tier", "price_version")}
_HOLD_ID = text_length(CreditsDebited, "hold_id")
_TOKENS = int_range(CreditsDebited, "billable_tokens")
_CREDITS = int_range(CreditsDebited, "credits")
# The forms the reader takes; anything else goes to pydantic (services/projector/ledger.py).
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_MULTIPLIER = re.compile(r"\d{1,30}(?:\.\d{1,30})?")
# RFC 3339 as pydantic writes it; other spellings (lower-case t/z, a space, ...) are read by
# pydantic, which gives the same instant but a different canonical text.
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)")
# A debit's digest leaves priced_at out (pricing re-stamps it on a re-sent usage event).
_PRICED_AT = b',"priced_at":'


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


def timestamp_text(at: datetime) -> str:
    """The way pydantic writes an aware datetime: ISO 8601, with "Z" for UTC."""
    text = at.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def read_timestamp(text: str) -> tuple[datetime, str] | None:
    """The time of an RFC 3339 text and the text pydantic writes for it; None for other
    spellings. A text already in that form (what the services write) costs one parse."""
    if _CANONICAL_TIME.fullmatch(text) is not None:
        at = _canonical_time(text)
        return None if at is None else (at, text)
    return _read_other_timestamp(text)


@lru_cache(maxsize=4096)
def _read_other_timestamp(text: str) -> tuple[datetime, str] | None:
    """read_timestamp of another spelling. Cached: the events of one instant share it."""
    if TIMESTAMP.fullmatch(text) is None:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        return None
    return at, timestamp_text(at)


def encode_debit(
    *,
    entry_id: str,
    account_id: str,
    usage_event_id: str,
    model: str,
    tier: str,
    multiplier: Decimal,
    billable_tokens: int,
    credits: int,
    price_version: str,
    occurred_at: datetime,
    priced_at: str,
    hold_id: str | None = None,
) -> bytes:
    """priced_at comes already formatted: one batch shares one pricing instant."""
    return debit_bytes(
        entry_id,
        encode_basestring(account_id),
        encode_basestring(usage_event_id),
        model_fields(model, tier, multiplier),
        billable_tokens,
        credits,
        encode_basestring(price_version),
        timestamp_text(occurred_at),
        hold_fragment(hold_id),
        priced_at,
    )


def debit_bytes(
    entry_id: str,
    account_json: str,
    usage_event_json: str,
    model_tier: str,
    billable_tokens: int,
    credits: int,
    price_version_json: str,
    occurred_text: str,
    hold: str,
    priced_text: str,
) -> bytes:
    """The debit's bytes from its parts already in JSON (`*_json`: quoted and escaped;
    `model_tier`: model_fields; `hold`: hold_fragment): the only place they are spelled."""
    return (
        '{"type":"credits.debited","schema_version":1,'
        f'"entry_id":"{entry_id}","account_id":{account_json},'
        f'"usage_event_id":{usage_event_json},{model_tier}'
        f'"billable_tokens":{billable_tokens},"credits":{credits},'
        f'"price_version":{price_version_json},"occurred_at":"{occurred_text}",{hold}'
        f'"priced_at":"{priced_text}"}}'
    ).encode()


def model_fields(model: str, tier: str, multiplier: Decimal | str) -> str:
    """The debit's model, tier and multiplier fields with their trailing comma."""
    return (
        f'"model":{encode_basestring(model)},"tier":{encode_basestring(tier)},'
        f'"multiplier":"{multiplier}",'
    )


def hold_fragment(hold_id: str | None) -> str:
    """The debit's hold_id field with its trailing comma; nothing when the usage had none
    (the schema leaves an absent hold_id out of the JSON)."""
    return "" if hold_id is None else f'"hold_id":{encode_basestring(hold_id)},'


class PlainDebit(NamedTuple):
    """A debit read by read_plain_debit: the values the CreditsDebited pydantic would build
    from the same bytes (the multiplier as its text), under the model's attribute names."""

    entry_id: UUID
    account_id: str
    usage_event_id: str
    model: str
    tier: str
    multiplier: str
    billable_tokens: int
    credits: int
    price_version: str
    occurred_at: datetime
    hold_id: str | None
    priced_at: datetime
    type: Literal["credits.debited"] = "credits.debited"
    schema_version: Literal[1] = 1


# A ledger entry as its readers hold it: a debit this module read, or any entry pydantic read.
Entry = LedgerEntry | PlainDebit
# The debit classes, this module's first: isinstance of a pydantic model is slower.
DEBITS = (PlainDebit, CreditsDebited)


class ReadDebit(NamedTuple):
    """What the projector needs of a debit's bytes: its values, each field's JSON text (the
    journal row is written from them) and the digest of the bytes without priced_at."""

    debit: PlainDebit
    # The match of the JSON text (`fields.string`): fields["credits"] is that field's text,
    # unquoted; None for an absent hold_id. A match holds the text and the fields' places
    # only: a batch of 10,000 debits holds about 11 MB less than with a dict of texts.
    fields: re.Match[str]
    digest: str


def read_plain_debit(raw: bytes, uuid_type: Callable[[str], UUID] = UUID) -> ReadDebit | None:
    """The debit when `raw` is exactly what encode_debit writes for a valid debit; None when
    pydantic must decide (which may still accept it, as another spelling of a debit).

    One regular expression checks the spelling and the rules it can express (field order,
    UUID, account pattern, text lengths, no escape, integer and timestamp forms) and
    captures every field; what it cannot express is checked on the captured texts.
    `uuid_type` builds the entry_id from its text: uuid.UUID or a subclass of it."""
    try:
        match = _DEBIT.fullmatch(raw.decode())
    except UnicodeDecodeError:
        return None
    if match is None:
        return None
    fields = match
    tokens, credits = int(fields["billable_tokens"]), int(fields["credits"])
    if not (_TOKENS[0] <= tokens <= _TOKENS[1] and _CREDITS[0] <= credits <= _CREDITS[1]):
        return None
    occurred_at = _canonical_time(fields["occurred_at"])
    priced_at = _canonical_time(fields["priced_at"])
    multiplier, account_id = fields["multiplier"], fields["account_id"]
    if occurred_at is None or priced_at is None or not _canonical_multiplier(multiplier):
        return None
    debit = PlainDebit(
        uuid_type(fields["entry_id"]), account_id, fields["usage_event_id"], fields["model"],
        fields["tier"], multiplier, tokens, credits, fields["price_version"], occurred_at,
        fields["hold_id"], priced_at,
    )  # fmt: skip
    cut = raw.rindex(_PRICED_AT)
    return ReadDebit(debit, fields, hashlib.sha256(raw[:cut] + b"}").hexdigest())


# A character a JSON string holds as itself: not a quote, backslash or control character
# (what encode_basestring escapes). The codecs' regular expressions read strings of these.
PLAIN_CHARACTER = r'[^"\\\x00-\x1f]'


def _text(name: str, length: tuple[int, int]) -> str:
    """A JSON string field of `length` characters, none of which needs an escape."""
    return f'"{name}":"(?P<{name}>{PLAIN_CHARACTER}{{{length[0]},{length[1]}}})"'


def _account() -> str:
    """account_id: the model's pattern, over characters that need no escape (the lookahead)."""
    return f'"account_id":"(?P<account_id>(?={PLAIN_CHARACTER}{{1,1024}}")(?:{_ACCOUNT.pattern}))"'


def _number(name: str) -> str:
    """An integer as Python writes it: no leading zero, no "-0", at most 19 digits."""
    return f'"{name}":(?P<{name}>0|-?[1-9][0-9]{{0,18}})'


# Timestamps as timestamp_text writes them: six fraction digits unless they are all zero,
# "Z" for a zero offset, offset minutes below 60 (fromisoformat would carry them into the
# hours). The values are checked by datetime.fromisoformat.
_TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.(?!0{6})\d{6})?(?:Z|[+-](?!00:00)\d\d:[0-5]\d)"
_CANONICAL_TIME = re.compile(_TIME)
# The fields in FIELDS order, spelled as debit_bytes writes them.
_DEBIT = re.compile(
    '\\{"type":"(?P<type>credits\\.debited)","schema_version":(?P<schema_version>1),'
    f'"entry_id":"(?P<entry_id>{_UUID.pattern})",{_account()},'
    f"{_text('usage_event_id', _IDENTIFIER['usage_event_id'])},"
    f"{_text('model', _IDENTIFIER['model'])},{_text('tier', _IDENTIFIER['tier'])},"
    f'"multiplier":"(?P<multiplier>{_MULTIPLIER.pattern})",'
    f"{_number('billable_tokens')},{_number('credits')},"
    f"{_text('price_version', _IDENTIFIER['price_version'])},"
    f'"occurred_at":"(?P<occurred_at>{_TIME})",(?:{_text("hold_id", _HOLD_ID)},)?'
    f'"priced_at":"(?P<priced_at>{_TIME})"\\}}'
)
if tuple(_DEBIT.groupindex) != FIELDS:
    raise ImportError("schemas/debit_json.py: the debit pattern lost a field's place")


@lru_cache(maxsize=1024)
def _canonical_multiplier(text: str) -> bool:
    """Whether pydantic reads `text` as a valid multiplier and writes it back unchanged."""
    if _MULTIPLIER.fullmatch(text) is None:
        return False
    try:
        return str(Decimal(text)) == text
    except InvalidOperation:
        return False


def _canonical_time(text: str) -> datetime | None:
    """The time of a text _TIME matched; None when it is no real time. The pattern leaves
    the text nothing that isoformat (timestamp_text) would write otherwise."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
