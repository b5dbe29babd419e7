"""Request and answer bodies of the HTTP API (docs/contracts.md, HTTP API).

Request fields are taken from the event contracts in schemas/events.py, with their
constraints, so the API cannot accept what the ledger would reject.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from schemas.events import AccountId, CreditsAdjusted, CreditsGranted, Event, UsageRecorded
from services import __version__
from services.api.auth import Scope


def contract(event: type[Event], name: str) -> Any:
    """The field `name` exactly as the event declares it (constraints included)."""
    return event.model_fields[name]


class RequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="after")
    def _no_nul_characters(self) -> RequestBody:
        # PostgreSQL text cannot hold NUL: such a value would fail the statement that
        # stores it (the key's name here, the journal's reason downstream).
        for name, value in self:
            if isinstance(value, str) and "\x00" in value:
                raise ValueError(f"{name} must not contain NUL characters")
        return self


class GrantRequest(RequestBody):
    credits: int = contract(CreditsGranted, "credits")
    reason: Literal["purchase", "grant", "refund"] = contract(CreditsGranted, "reason")
    reference: str = contract(CreditsGranted, "reference")


class AdjustmentRequest(RequestBody):
    """An operator's correction: signed credits, never zero, and a reason."""

    credits: int = contract(CreditsAdjusted, "credits")
    reason: str = contract(CreditsAdjusted, "reason")
    reference: str = contract(CreditsAdjusted, "reference")

    @model_validator(mode="after")
    def _not_zero(self) -> AdjustmentRequest:
        if self.credits == 0:
            raise ValueError("credits must not be 0: an adjustment changes the balance")
        return self


class KeyRequest(RequestBody):
    scope: Scope
    account_id: AccountId | None = None
    name: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None

    @model_validator(mode="after")
    def _account_for_account_keys(self) -> KeyRequest:
        if (self.scope == "account") != (self.account_id is not None):
            raise ValueError("account_id is required for, and only for, the 'account' scope")
        return self


class KeyInfo(BaseModel):
    """An API key as listed: never its secret."""

    key_id: UUID
    scope: Scope
    account_id: str | None
    name: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class CreatedKey(BaseModel):
    key_id: UUID
    secret: str
    scope: Scope
    account_id: str | None
    name: str | None
    created_at: datetime


class KeyList(BaseModel):
    keys: list[KeyInfo]


class RevokedKey(BaseModel):
    key_id: UUID
    revoked_at: datetime


class QuoteRequest(RequestBody):
    model: str = contract(UsageRecorded, "model")
    input_tokens: int = contract(UsageRecorded, "input_tokens")
    output_tokens: int = contract(UsageRecorded, "output_tokens")
    cached_input_tokens: int = contract(UsageRecorded, "cached_input_tokens")

    @model_validator(mode="after")
    def _cached_within_input(self) -> QuoteRequest:
        if self.cached_input_tokens > self.input_tokens:
            raise ValueError("cached_input_tokens must not exceed input_tokens")
        return self


class ErrorBody(BaseModel):
    error: str
    detail: str


class Balance(BaseModel):
    """`held`: credits of the active holds; `available = balance - held`, what new holds
    may take (docs/contracts.md, Holds)."""

    account_id: str
    balance: int
    purchased: int
    adjusted: int
    spent: int
    held: int
    available: int
    entries: int
    status: Literal["active", "exhausted"]
    updated_at: datetime

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Balance:
        held = int(row["held"])
        return cls.model_validate({**row, "held": held, "available": row["balance"] - held})


EntryType = Literal["credits.debited", "credits.granted", "credits.adjusted"]
# journal.kind -> the event type it was applied from
ENTRY_TYPES: dict[str, EntryType] = {
    "debited": "credits.debited",
    "granted": "credits.granted",
    "adjusted": "credits.adjusted",
}


class Entry(BaseModel):
    """One journal entry. `credits` is its signed effect on the balance: positive for
    credits.granted, negative for credits.debited (zero for free models), either sign for
    credits.adjusted."""

    entry_id: UUID
    type: EntryType
    credits: int
    model: str | None
    tier: str | None
    multiplier: str | None
    billable_tokens: int | None
    price_version: str | None
    usage_event_id: str | None
    reason: str | None
    reference: str | None
    occurred_at: datetime

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Entry:
        multiplier: Decimal | None = row["multiplier"]
        return cls(
            entry_id=row["entry_id"],
            type=ENTRY_TYPES[row["kind"]],
            credits=row["credits"],
            model=row["model"],
            tier=row["tier"],
            multiplier=None if multiplier is None else format(multiplier, "f"),
            billable_tokens=row["billable_tokens"],
            price_version=row["price_version"],
            usage_event_id=row["usage_event_id"],
            reason=row["reason"],
            reference=row["reference"],
            occurred_at=row["occurred_at"],
        )


class EntriesPage(BaseModel):
    entries: list[Entry]
    next_cursor: str | None


class UsageRow(BaseModel):
    key: str
    requests: int
    tokens: int
    credits: int


class UsageReport(BaseModel):
    rows: list[UsageRow]


class GrantAccepted(BaseModel):
    entry_id: UUID
    status: Literal["accepted"] = "accepted"


class QuoteAnswer(BaseModel):
    credits: int
    multiplier: str
    tier: str
    price_version: str


class PriceBookAnswer(BaseModel):
    versions: list[dict[str, Any]]


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    # A factory, so the OpenAPI document does not change with every release.
    version: str = Field(default_factory=lambda: __version__)
