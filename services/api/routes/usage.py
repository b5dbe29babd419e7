"""POST /v1/usage: usage events from gateways that cannot reach Kafka (docs/contracts.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from services.api.auth import require
from services.api.authenticate import ScopedRoute
from services.api.errors import ApiError
from services.api.ingest import MAX_EVENTS, IngestUnavailable, check_batch
from services.api.models import ErrorBody
from services.api.resources import Resources, resources

router = APIRouter(
    prefix="/v1",
    tags=["usage"],
    dependencies=[Depends(require("gateway"))],
    route_class=ScopedRoute,
)
Opened = Annotated[Resources, Depends(resources)]


class UsageBatch(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Items are checked one by one against usage.recorded, so one bad event is named by
    # its index and does not refuse the others.
    events: list[Any] = Field(min_length=1, max_length=MAX_EVENTS)


class RejectedItem(BaseModel):
    index: int
    error: str
    detail: str


class UsageAccepted(BaseModel):
    accepted: int
    rejected: list[RejectedItem]


@router.post(
    "/usage",
    status_code=202,
    responses={code: {"model": ErrorBody} for code in (400, 401, 403, 413, 422, 503)},
)
async def post_usage(body: UsageBatch, opened: Opened) -> UsageAccepted:
    """Publishes the valid events to usage.v1, keyed by account, and answers once Kafka has
    committed them all. An event that is invalid or that pricing would reject
    (`unknown_model`, `no_price_version`, `exceeds_context`, `outside_dedup_window`;
    `invalid_event` also for occurred_at more than 24 h ahead) is listed by index with that
    code and not published. A 503 published nothing; sending the same batch again is safe,
    since event ids are deduplicated per account."""
    # In whole milliseconds, the precision of the Kafka timestamp it becomes.
    now = datetime.now(UTC)
    received = now.replace(microsecond=now.microsecond // 1000 * 1000)
    checked = check_batch(body.events, opened.pricebook, received, opened.usage.window)
    if checked.valid:
        try:
            await opened.usage.publish(checked.valid, received)
        except IngestUnavailable as error:
            raise ApiError(503, "kafka_unavailable", str(error)) from error
    return UsageAccepted(
        accepted=len(checked.valid),
        rejected=[
            RejectedItem(index=r.index, error=r.error, detail=r.detail) for r in checked.rejected
        ],
    )
