"""The event contracts (docs/contracts.md, Events): the only place their fields are defined.

Every event is a frozen value object. Unknown fields are rejected, token counts are strict
integers, timestamps must carry a time zone, and `type`/`schema_version` are fixed.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    model_validator,
)

ACCOUNT_ID_PATTERN = r"^[A-Za-z0-9._:@-]{1,128}$"
# Token counts above this cannot come from a real request and would overflow the arithmetic
# downstream (credits are PostgreSQL bigint); such an event is invalid, not priced.
MAX_TOKENS = 10**12
# The largest total one account may reach (balance, purchased, spent, |adjusted|): PostgreSQL's
# bigint. The API refuses a grant or adjustment that would pass it (422 balance_limit) and the
# projector rejects an entry that would, so totals stay exact (docs/contracts.md, Guarantees).
BALANCE_LIMIT = 2**63 - 1

AccountId = Annotated[str, StringConstraints(pattern=ACCOUNT_ID_PATTERN)]
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Text = Annotated[str, StringConstraints(max_length=1024)]
TokenCount = Annotated[int, Field(strict=True, ge=0, le=MAX_TOKENS)]
Credits = Annotated[int, Field(strict=True, ge=-(2**62), le=2**62)]
Timestamp = AwareDatetime


def _finite(value: Decimal) -> Decimal:
    if not value.is_finite() or value < 0:
        raise ValueError("multiplier must be a finite, non-negative decimal")
    return value


Multiplier = Annotated[Decimal, AfterValidator(_finite)]
# Any identifier, not only a UUID: a usage event naming a hold the ledger never placed is
# still billed (as an unknown hold), never rejected.
HoldId = Identifier
# The header the API takes (Idempotency-Key), 1..255 characters; no NUL, which PostgreSQL
# text cannot hold.
IdempotencyKey = Annotated[
    str, StringConstraints(min_length=1, max_length=255, pattern=r"^[^\x00]+$")
]
PositiveCredits = Annotated[int, Field(strict=True, gt=0, le=2**62)]
# A hold's credits: 0 too, the worst case of a free model, placed and settled like any other.
HoldCredits = Annotated[int, Field(strict=True, ge=0, le=2**62)]


def _absent(value: object) -> bool:
    return value is None


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UsageRecorded(Event):
    """A gateway served a request; `event_id` is the gateway's idempotency key."""

    type: Literal["usage.recorded"] = "usage.recorded"
    schema_version: Literal[1] = 1
    event_id: Identifier
    account_id: AccountId
    model: Identifier
    input_tokens: TokenCount
    cached_input_tokens: TokenCount = 0
    output_tokens: TokenCount
    occurred_at: Timestamp
    gateway_id: Identifier
    request_id: Identifier | None = None
    # The hold that admitted the request (docs/contracts.md, Holds). Left out of the JSON
    # when absent, so events without a hold keep the bytes and digests they always had.
    hold_id: HoldId | None = Field(default=None, exclude_if=_absent)

    @model_validator(mode="after")
    def _cached_within_input(self) -> UsageRecorded:
        if self.cached_input_tokens > self.input_tokens:
            raise ValueError("cached_input_tokens must not exceed input_tokens")
        return self


class CreditsDebited(Event):
    """Pricing turned one usage event into a debit (zero credits for free models)."""

    type: Literal["credits.debited"] = "credits.debited"
    schema_version: Literal[1] = 1
    entry_id: UUID
    account_id: AccountId
    usage_event_id: Identifier
    model: Identifier
    tier: Identifier
    multiplier: Multiplier
    billable_tokens: TokenCount
    credits: Annotated[int, Field(strict=True, ge=0, le=2**62)]
    price_version: Identifier
    occurred_at: Timestamp
    # Copied from the usage event. Before priced_at on purpose: priced_at stays the last
    # field, which the projector's content digest relies on (services/projector/ledger.py).
    hold_id: HoldId | None = Field(default=None, exclude_if=_absent)
    priced_at: Timestamp


GrantReason = Literal["purchase", "grant", "refund"]
GrantCategory = Literal["paid", "promotional"]
# A grant is `paid` only when money was received for it; a promotion, or credits given back
# (a refund grant), brings no revenue (docs/contracts.md, Events).
CATEGORY_OF_REASON: dict[GrantReason, GrantCategory] = {
    "purchase": "paid",
    "grant": "promotional",
    "refund": "promotional",
}
# The API's Ed25519 signature over the entry's canonical form (schemas/entry_signing.py).
# Optional here so that an unsigned entry reads as an entry, which the projector then
# rejects as `unauthenticated` (never applied); the API always writes it.
Signature = Annotated[
    str,
    Field(
        max_length=1024,
        description="ed25519:<key id>:<base64 signature> over the entry's canonical JSON "
        "without this field (docs/contracts.md); entries without a valid one are rejected",
    ),
]


class CreditsGranted(Event):
    """Credits were bought or given: a top-up, a promotion or a refund."""

    type: Literal["credits.granted"] = "credits.granted"
    schema_version: Literal[1] = 1
    entry_id: UUID
    account_id: AccountId
    credits: PositiveCredits
    reason: GrantReason
    reference: Text
    category: GrantCategory
    occurred_at: Timestamp
    signature: Signature | None = Field(default=None, exclude_if=_absent)


class CreditsAdjusted(Event):
    """An operator corrected a balance; `credits` is signed and a reason is required."""

    type: Literal["credits.adjusted"] = "credits.adjusted"
    schema_version: Literal[1] = 1
    entry_id: UUID
    account_id: AccountId
    credits: Credits
    reason: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    reference: Text = ""
    occurred_at: Timestamp
    signature: Signature | None = Field(default=None, exclude_if=_absent)


MoneyIn = CreditsGranted | CreditsAdjusted  # the entries only the API writes, signed


RejectionCode = Literal[
    "invalid_json",
    "invalid_event",
    "unknown_model",
    "exceeds_context",
    "no_price_version",
    "outside_dedup_window",
]


class SourcePosition(Event):
    topic: str
    partition: Annotated[int, Field(strict=True, ge=0)]
    offset: Annotated[int, Field(strict=True, ge=0)]


class UsageRejected(Event):
    """Pricing could not price a message on usage.v1; the original bytes travel with it."""

    type: Literal["usage.rejected"] = "usage.rejected"
    schema_version: Literal[1] = 1
    error: RejectionCode
    detail: str
    payload: str
    source: SourcePosition
    rejected_at: Timestamp


class BalanceAlert(Event):
    """A balance crossed a threshold (docs/contracts.md, Events): the fields every alert shares.

    `alert_id` is uuid5 of account, type, threshold and entry_id, so the same crossing is
    always the same alert, whatever the batching, redelivery or rebuild.
    """

    type: str
    schema_version: Literal[1] = 1
    alert_id: UUID
    account_id: AccountId
    threshold: Annotated[int, Field(strict=True, ge=0, le=BALANCE_LIMIT)]
    balance: int
    previous_balance: int
    entry_id: UUID
    occurred_at: Timestamp


class BalanceLow(BalanceAlert):
    """The balance fell from above a configured threshold to at or below it."""

    type: Literal["balance.low"] = "balance.low"


class BalanceExhausted(BalanceAlert):
    """The balance fell from above 0 to at or below 0 (`threshold` is 0)."""

    type: Literal["balance.exhausted"] = "balance.exhausted"


class BalanceRecovered(BalanceAlert):
    """The balance rose from at or below 0 to above 0 (`threshold` is 0)."""

    type: Literal["balance.recovered"] = "balance.recovered"


AlertType = Literal["balance.low", "balance.exhausted", "balance.recovered"]
Alert = Annotated[BalanceLow | BalanceExhausted | BalanceRecovered, Field(discriminator="type")]
alert_adapter: TypeAdapter[Alert] = TypeAdapter(Alert)
ALERT_EVENTS: dict[AlertType, type[BalanceLow | BalanceExhausted | BalanceRecovered]] = {
    "balance.low": BalanceLow,
    "balance.exhausted": BalanceExhausted,
    "balance.recovered": BalanceRecovered,
}


class HoldPlaced(Event):
    """The API admitted a request: `credits` are held until settled, released or expired."""

    type: Literal["hold.placed"] = "hold.placed"
    schema_version: Literal[1] = 1
    hold_id: HoldId
    account_id: AccountId
    credits: HoldCredits
    idempotency_key: IdempotencyKey
    expires_at: Timestamp
    occurred_at: Timestamp


class HoldRefused(Event):
    """The API refused a hold: `available` was less than `credits`; nothing is held."""

    type: Literal["hold.refused"] = "hold.refused"
    schema_version: Literal[1] = 1
    hold_id: HoldId
    account_id: AccountId
    credits: HoldCredits
    available: int
    idempotency_key: IdempotencyKey
    occurred_at: Timestamp


class HoldReleased(Event):
    """The gateway gave a hold back (its request failed or was cancelled)."""

    type: Literal["hold.released"] = "hold.released"
    schema_version: Literal[1] = 1
    hold_id: HoldId
    account_id: AccountId
    occurred_at: Timestamp


HoldEvent = Annotated[HoldPlaced | HoldRefused | HoldReleased, Field(discriminator="type")]
hold_event_adapter: TypeAdapter[HoldEvent] = TypeAdapter(HoldEvent)

LedgerEntry = Annotated[
    CreditsDebited | CreditsGranted | CreditsAdjusted, Field(discriminator="type")
]
ledger_entry_adapter: TypeAdapter[LedgerEntry] = TypeAdapter(LedgerEntry)

ALL_EVENTS: tuple[type[Event], ...] = (
    UsageRecorded,
    CreditsDebited,
    CreditsGranted,
    CreditsAdjusted,
    UsageRejected,
    BalanceLow,
    BalanceExhausted,
    BalanceRecovered,
    HoldPlaced,
    HoldRefused,
    HoldReleased,
)


def parse_ledger_entry(raw: bytes | str) -> LedgerEntry:
    return ledger_entry_adapter.validate_json(raw)


def parse_alert(raw: bytes | str) -> Alert:
    return alert_adapter.validate_json(raw)


def parse_hold_event(raw: bytes | str) -> HoldEvent:
    return hold_event_adapter.validate_json(raw)


def dump(event: Event) -> bytes:
    return event.model_dump_json().encode()


__all__ = [
    "ACCOUNT_ID_PATTERN",
    "ALERT_EVENTS",
    "ALL_EVENTS",
    "CATEGORY_OF_REASON",
    "Alert",
    "AlertType",
    "BalanceAlert",
    "BalanceExhausted",
    "BalanceLow",
    "BalanceRecovered",
    "CreditsAdjusted",
    "CreditsDebited",
    "CreditsGranted",
    "GrantCategory",
    "GrantReason",
    "HoldCredits",
    "HoldEvent",
    "HoldPlaced",
    "HoldRefused",
    "HoldReleased",
    "LedgerEntry",
    "MoneyIn",
    "RejectionCode",
    "SourcePosition",
    "UsageRecorded",
    "UsageRejected",
    "dump",
    "parse_alert",
    "parse_hold_event",
    "parse_ledger_entry",
]
