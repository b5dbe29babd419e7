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
from functools import lru_cache
from typing import NamedTuple

import orjson

from schemas.events import ACCOUNT_ID_PATTERN, MAX_TOKENS, UsageRecorded
from services.pricing.debit_json import timestamp_text

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
    raise ImportError("UsageRecorded changed: update services/pricing/usage_json.py")
if ACCOUNT_ID_PATTERN != r"^[A-Za-z0-9._:@-]{1,128}$":
    raise ImportError("the account id rule changed: update services/pricing/usage_json.py")

# Python's `$` would also match before a final newline; fullmatch does not.
_ACCOUNT = re.compile(r"[A-Za-z0-9._:@-]{1,128}")
# RFC 3339 as gateways write it; anything else (lower-case t/z, a space, more than six
# fraction digits, numbers) is left to pydantic.
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)")


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
    # Identifiers: 1..128 characters (inlined: this runs once per event).
    if type(event_id) is not str or not 0 < len(event_id) <= 128:
        return None
    if type(model) is not str or not 0 < len(model) <= 128:
        return None
    if type(gateway_id) is not str or not 0 < len(gateway_id) <= 128:
        return None
    request_id = get("request_id")
    if request_id is not None and (type(request_id) is not str or not 0 < len(request_id) <= 128):
        return None
    hold_id = get("hold_id")
    if hold_id is not None and (type(hold_id) is not str or not 0 < len(hold_id) <= 128):
        return None
    account_id = data["account_id"]
    if type(account_id) is not str or _ACCOUNT.fullmatch(account_id) is None:
        return None
    input_tokens, output_tokens = data["input_tokens"], data["output_tokens"]
    cached = get("cached_input_tokens", 0)
    if type(input_tokens) is not int or type(output_tokens) is not int or type(cached) is not int:
        return None
    if not (0 <= cached <= input_tokens <= MAX_TOKENS and 0 <= output_tokens <= MAX_TOKENS):
        return None
    occurred_at = data["occurred_at"]
    if type(occurred_at) is not str:
        return None
    at = _timestamp(occurred_at)
    if at is None:
        return None
    return PlainUsage(
        event_id, account_id, model, input_tokens, cached, output_tokens, *at, hold_id
    )


@lru_cache(maxsize=4096)
def _timestamp(text: str) -> tuple[datetime, str] | None:
    """The time and its text in the debit. Cached: events of one instant share the text."""
    if _TIMESTAMP.fullmatch(text) is None:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        return None
    return at, timestamp_text(at)
