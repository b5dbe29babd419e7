"""Alert routes: an account's thresholds and webhook (docs/contracts.md, Alerts), and the
webhook delivery log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from schemas.events import ACCOUNT_ID_PATTERN, BALANCE_LIMIT
from services.alerts import store
from services.alerts.destinations import MAX_URL_LENGTH, InvalidWebhookUrl, check_url
from services.alerts.schedule import Status
from services.api.auth import require
from services.api.authenticate import ScopedRoute
from services.api.database import connection
from services.api.errors import ApiError
from services.api.models import ErrorBody
from services.api.resources import Resources, resources
from services.common.settings import Settings

router = APIRouter(tags=["alerts"], route_class=ScopedRoute)

MAX_THRESHOLDS = 10
AccountId = Annotated[str, Path(pattern=ACCOUNT_ID_PATTERN, description="the account id")]
Opened = Annotated[Resources, Depends(resources)]
ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (401, 403, 422, 503)
}
Threshold = Annotated[int, Field(strict=True, ge=0, le=BALANCE_LIMIT)]


class AlertSettingsRequest(BaseModel):
    """Replaces the account's alert settings; what is left out is cleared."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    thresholds: list[Threshold] = Field(default_factory=list, max_length=MAX_THRESHOLDS)
    webhook_url: Annotated[str, Field(max_length=MAX_URL_LENGTH)] | None = None


class AlertSettings(BaseModel):
    thresholds: list[int]
    webhook_url: str | None


class AlertSettingsSaved(AlertSettings):
    webhook_secret: str | None = Field(
        description="whsec_...: shown only by the call that set a URL on an account without one"
    )


class Delivery(BaseModel):
    alert_id: UUID
    account_id: str
    url: str
    status: Status
    attempts: int
    last_status_code: int | None
    next_attempt_at: datetime | None


class Deliveries(BaseModel):
    deliveries: list[Delivery]


@router.put(
    "/v1/accounts/{account_id}/alerts",
    dependencies=[Depends(require("admin"))],
    responses={code: {"model": ErrorBody} for code in (*ERRORS, 400, 413)},
)
async def put_alerts(
    account_id: AccountId, body: AlertSettingsRequest, opened: Opened, request: Request
) -> AlertSettingsSaved:
    """Thresholds (at most 10, each >= 0) raise balance.low; balance.exhausted and
    balance.recovered need none. Alerts for an account with a webhook URL are POSTed there,
    signed with the secret this call shows when it sets the first URL."""
    if body.webhook_url is not None:
        settings: Settings = request.app.state.settings
        try:
            await check_url(body.webhook_url, settings.ledger_webhook_allow_private)
        except InvalidWebhookUrl as exc:
            raise ApiError(422, "invalid_webhook_url", str(exc)) from exc
    async with connection(opened.pool) as conn:
        saved = await store.put_subscription(conn, account_id, body.thresholds, body.webhook_url)
    return AlertSettingsSaved(
        thresholds=saved.thresholds,
        webhook_url=saved.webhook_url,
        webhook_secret=saved.webhook_secret,
    )


@router.get(
    "/v1/accounts/{account_id}/alerts",
    dependencies=[Depends(require("read"))],
    responses=ERRORS,
)
async def get_alerts(account_id: AccountId, opened: Opened) -> AlertSettings:
    async with connection(opened.pool) as conn:
        found = await store.subscription(conn, account_id)
    return AlertSettings(thresholds=found.thresholds, webhook_url=found.webhook_url)


@router.get(
    "/v1/webhooks/deliveries",
    dependencies=[Depends(require("admin"))],
    responses=ERRORS,
)
async def get_deliveries(
    opened: Opened,
    account_id: Annotated[str | None, Query(pattern=ACCOUNT_ID_PATTERN)] = None,
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Deliveries:
    """Newest first."""
    async with connection(opened.pool) as conn:
        rows = await store.deliveries(conn, account_id, status, limit)
    return Deliveries(deliveries=[Delivery.model_validate(r) for r in rows])
