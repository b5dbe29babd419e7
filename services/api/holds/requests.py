"""The bodies of the hold routes, their digest (for Idempotency-Key) and their price."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.events import AccountId, HoldCredits, Identifier, TokenCount
from services.pricing.pricebook import PriceBook, Rejection

DEFAULT_TTL_SECONDS = 600
MAX_TTL_SECONDS = 86_400
MAX_BATCH = 1000
TtlSeconds = Annotated[int, Field(strict=True, ge=1, le=MAX_TTL_SECONDS)]


class HoldRequest(BaseModel):
    """`{"credits"}` (0 too: a free model), or a request to price like a quote with
    output = max_output_tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    credits: HoldCredits | None = None
    model: Identifier | None = None
    input_tokens: TokenCount | None = None
    max_output_tokens: TokenCount | None = None
    cached_input_tokens: TokenCount | None = None
    ttl_seconds: TtlSeconds = DEFAULT_TTL_SECONDS

    @model_validator(mode="after")
    def _one_form(self) -> HoldRequest:
        priced = (self.model, self.input_tokens, self.max_output_tokens)
        if self.credits is not None:
            if any(v is not None for v in (*priced, self.cached_input_tokens)):
                raise ValueError("give either credits or model and token counts, not both")
            return self
        if any(v is None for v in priced):
            raise ValueError("give credits, or model, input_tokens and max_output_tokens")
        if (self.cached_input_tokens or 0) > (self.input_tokens or 0):
            raise ValueError("cached_input_tokens must not exceed input_tokens")
        return self

    def digest(self) -> str:
        """Equal for equal requests, whatever the field order or the defaults spelled out."""
        fields = self.model_dump(exclude={"account_id", "idempotency_key"})
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def price(self, book: PriceBook, at: datetime) -> int | Rejection:
        """The credits to hold: as given, or the worst case under the version in force."""
        if self.credits is not None:
            return self.credits
        assert self.model is not None and self.input_tokens is not None
        assert self.max_output_tokens is not None
        quote = book.quote(
            model=self.model,
            input_tokens=self.input_tokens,
            output_tokens=self.max_output_tokens,
            cached_input_tokens=self.cached_input_tokens or 0,
            at=at,
        )
        return quote if isinstance(quote, Rejection) else quote.credits


class BatchItem(HoldRequest):
    """One hold of POST /v1/holds: a single route's body with its account and key. The key
    is any text here: the route checks it by the header's rule (services/api/idempotency.py),
    so a bad one is that item's 400 `invalid_idempotency_key`, as the header's would be."""

    account_id: AccountId
    idempotency_key: str


class BatchRequest(BaseModel):
    """Items are read one by one (BatchItem), so a bad item, even one that is not a JSON
    object, gets its own result."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    holds: Annotated[list[Any], Field(min_length=1, max_length=MAX_BATCH)]
