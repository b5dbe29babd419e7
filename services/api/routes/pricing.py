"""Price routes: a quote for one request, and the price-book versions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends

from services.api.auth import require
from services.api.authenticate import ScopedRoute
from services.api.errors import ApiError
from services.api.models import ErrorBody, PriceBookAnswer, QuoteAnswer, QuoteRequest
from services.api.resources import Resources, resources
from services.pricing.pricebook import Rejection

# About no account: open to account keys too (docs/contracts.md, Authentication and scopes).
router = APIRouter(
    prefix="/v1",
    tags=["pricing"],
    dependencies=[Depends(require("read", account_keys=True))],
    route_class=ScopedRoute,
)
Opened = Annotated[Resources, Depends(resources)]
ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (401, 403, 422, 503)
}


# 400: a body that cannot be decoded at all; 413: over the body limit (services/api/limits.py).
@router.post("/quote", responses={**ERRORS, 400: {"model": ErrorBody}, 413: {"model": ErrorBody}})
async def post_quote(body: QuoteRequest, opened: Opened) -> QuoteAnswer:
    """Prices a request under the version in force now; 422 `unknown_model` or
    `exceeds_context` when it cannot be priced."""
    quote = opened.pricebook.quote(
        model=body.model,
        input_tokens=body.input_tokens,
        output_tokens=body.output_tokens,
        cached_input_tokens=body.cached_input_tokens,
        at=datetime.now(UTC),
    )
    if isinstance(quote, Rejection):
        raise ApiError(422, quote.code, quote.detail)
    return QuoteAnswer(
        credits=quote.credits,
        multiplier=format(quote.multiplier, "f"),
        tier=quote.tier,
        price_version=quote.price_version,
    )


@router.get("/pricebook", responses=ERRORS)
async def get_pricebook(opened: Opened) -> PriceBookAnswer:
    """The version in force now and those scheduled after it (superseded ones left out)."""
    versions = opened.pricebook.describe(datetime.now(UTC))
    return PriceBookAnswer(versions=[v for v in versions if v["status"] != "superseded"])
