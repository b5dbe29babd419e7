"""A usage.recorded message read without pydantic when it plainly keeps every rule: the hot
path's parser.

pydantic (`UsageRecorded.model_validate_json`) stays the authority. `read_plain_usage`
accepts only a strict subset of what pydantic accepts, with the same resulting values, and
answers None for anything else (bad JSON, an unknown or missing field, a float, a bool, a
long string, an unusual timestamp spelling, ...), which then goes the pydantic way and gets
its rejection code and detail from there. Unit tests compare both over generated valid and
invalid input, and the import-time check below fails loudly if the contract changes.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import NamedTuple

import orjson

from schemas.debit_json import PLAIN_CHARACTER, read_timestamp, timestamp_text
from schemas.events import UsageRecorded
from schemas.limits import int_range, text_length, text_pattern

# The fields UsageRecorded had when this parser was written; see the check below.
FIELDS = frozenset(
    {
        "type",
        "schema_version",
        "event_id",
        "account_id",
        "model",
        "input_tokens",
        "cached_input_tokens",
        "output_tokens",
        "occurred_at",
        "gateway_id",
        "request_id",
        "hold_id",
    }
)
REQUIRED = frozenset(
    {"event_id", "account_id", "model", "input_tokens", "output_tokens", "occurred_at"}
    | {"gateway_id"}
)
_REQUIRED_NOW = {name for name, info in UsageRecorded.model_fields.items() if info.is_required()}
if set(UsageRecorded.model_fields) != FIELDS or _REQUIRED_NOW != REQUIRED:
    raise ImportError("UsageRecorded changed: update schemas/usage_json.py")

_ACCOUNT = text_pattern(UsageRecorded, "account_id")
# The identifiers share one length rule; the check below keeps the inlined code honest.
_SHORTEST, _LONGEST = text_length(UsageRecorded, "event_id")
_IDENTIFIERS = ("event_id", "model", "gateway_id", "request_id", "hold_id")
if any(text_length(UsageRecorded, name) != (_SHORTEST, _LONGEST) for name in _IDENTIFIERS):
    raise ImportError("UsageRecorded's identifier lengths differ: update schemas/usage_json.py")
_TOKENS = {int_range(UsageRecorded, name) for name in FIELDS if name.endswith("tokens")}
if len(_TOKENS) != 1 or min(_TOKENS)[0] != 0:
    raise ImportError("UsageRecorded's token ranges differ: update schemas/usage_json.py")
((_, MAX_TOKENS),) = _TOKENS


class PlainUsage(NamedTuple):
    """The fields pricing reads, equal to those of the UsageRecorded pydantic would build."""

    event_id: str
    account_id: str
    model: str
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    occurred_at: datetime
    occurred_text: str  # occurred_at as the debit writes it (debit_json.timestamp_text)
    hold_id: str | None = None


def read_plain_usage(value: bytes) -> PlainUsage | None:
    """The event when it plainly keeps every rule of UsageRecorded; None when pydantic must
    decide (which may still accept it)."""
    try:
        match = _CANONICAL.fullmatch(value.decode())
    except UnicodeDecodeError:
        return None
    if match is not None:
        return _read_canonical(match)
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if type(data) is not dict:
        return None
    keys = data.keys()
    if not (keys <= FIELDS and keys >= REQUIRED):
        return None
    get = data.get
    if get("type", "usage.recorded") != "usage.recorded":
        return None
    version = get("schema_version", 1)
    if type(version) is not int or version != 1:
        return None
    event_id, model, gateway_id = data["event_id"], data["model"], data["gateway_id"]
    # Identifiers (inlined: this runs once per event).
    if type(event_id) is not str or not _SHORTEST <= len(event_id) <= _LONGEST:
        return None
    if type(model) is not str or not _SHORTEST <= len(model) <= _LONGEST:
        return None
    if type(gateway_id) is not str or not _SHORTEST <= len(gateway_id) <= _LONGEST:
        return None
    request_id = get("request_id")
    if request_id is not None and not _identifier(request_id):
        return None
    hold_id = get("hold_id")
    if hold_id is not None and not _identifier(hold_id):
        return None
    account_id, occurred_at = data["account_id"], data["occurred_at"]
    if type(account_id) is not str or type(occurred_at) is not str:
        return None
    input_tokens, output_tokens = data["input_tokens"], data["output_tokens"]
    cached = get("cached_input_tokens", 0)
    if type(input_tokens) is not int or type(output_tokens) is not int or type(cached) is not int:
        return None
    tokens = (input_tokens, cached, output_tokens)
    return _checked_usage(event_id, account_id, model, tokens, occurred_at, hold_id)


def _read_canonical(match: re.Match[str]) -> PlainUsage | None:
    """read_plain_usage of the event's canonical JSON (`dump(UsageRecorded)`, what the
    services' publisher writes), which _CANONICAL has read: the same checks on its texts,
    without decoding the JSON into objects first."""
    (
        event_id, account_id, model, input_text, cached_text, output_text, occurred_at, _, _,
        hold_id,
    ) = match.groups()  # fmt: skip
    input_tokens, cached, output_tokens = int(input_text), int(cached_text), int(output_text)
    return _checked_usage(
        event_id, account_id, model, (input_tokens, cached, output_tokens), occurred_at, hold_id
    )


def _checked_usage(
    event_id: str,
    account_id: str,
    model: str,
    tokens: tuple[int, int, int],
    occurred_at: str,
    hold_id: str | None,
) -> PlainUsage | None:
    """The rules both readers check on values of the right types: the account's pattern,
    the token ranges (input, cached, output) and the timestamp's spelling."""
    input_tokens, cached, output_tokens = tokens
    if not (0 <= cached <= input_tokens <= MAX_TOKENS and 0 <= output_tokens <= MAX_TOKENS):
        return None
    if _ACCOUNT.fullmatch(account_id) is None:
        return None
    at = read_timestamp(occurred_at)
    if at is None:
        return None
    return PlainUsage(
        event_id, account_id, model, input_tokens, cached, output_tokens, *at, hold_id
    )


# The canonical JSON of a usage event: the fields in the model's order, no space, strings
# that need no escape (no quote, backslash or control character), integers as Python writes
# them, an absent hold_id left out. Anything else goes the orjson way.
_ID = f"{PLAIN_CHARACTER}{{{_SHORTEST},{_LONGEST}}}"
_COUNT = r"0|[1-9][0-9]{0,12}"
_CANONICAL = re.compile(
    '\\{"type":"usage\\.recorded","schema_version":1,'
    f'"event_id":"({_ID})","account_id":"({PLAIN_CHARACTER}{{1,1024}})","model":"({_ID})",'
    f'"input_tokens":({_COUNT}),"cached_input_tokens":({_COUNT}),"output_tokens":({_COUNT}),'
    f'"occurred_at":"({PLAIN_CHARACTER}{{1,64}})","gateway_id":"({_ID})",'
    f'"request_id":(null|"{_ID}")(?:,"hold_id":"({_ID})")?\\}}'
)
if tuple(UsageRecorded.model_fields)[2:] != (
    "event_id", "account_id", "model", "input_tokens", "cached_input_tokens",
    "output_tokens", "occurred_at", "gateway_id", "request_id", "hold_id",
):  # fmt: skip
    raise ImportError("UsageRecorded's field order changed: update schemas/usage_json.py")


def _identifier(value: object) -> bool:
    return type(value) is str and _SHORTEST <= len(value) <= _LONGEST


def usage_json(
    event_id: str, account_id: str, model: str, tokens: tuple[int, int, int], tail: str
) -> bytes:
    """JSON equal to `model_dump_json()` of the same UsageRecorded, for strings that need no
    escaping (the traffic generator uses no others). `tail` is json_tail's text."""
    inp, cached, out = tokens
    return (
        '{"type":"usage.recorded","schema_version":1,'
        f'"event_id":"{event_id}","account_id":"{account_id}","model":"{model}",'
        f'"input_tokens":{inp},"cached_input_tokens":{cached},"output_tokens":{out},{tail}'
    ).encode()


def json_tail(occurred_at: datetime, gateway_id: str) -> str:
    """The JSON of a usage event from occurred_at on (no request_id, no hold_id)."""
    at = timestamp_text(occurred_at)
    return f'"occurred_at":"{at}","gateway_id":"{gateway_id}","request_id":null}}'
