"""Account routes: balance, entries and usage (read), credits and adjustments (admin)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, Header, Path, Query

from schemas.events import ACCOUNT_ID_PATTERN
from services.api import queries
from services.api.auth import require
from services.api.authenticate import ScopedRoute
from services.api.cursor import InvalidCursor, decode_cursor, encode_cursor
from services.api.database import connection
from services.api.errors import ApiError
from services.api.idempotency import check_key
from services.api.models import (
    AdjustmentRequest,
    Balance,
    EntriesPage,
    Entry,
    ErrorBody,
    GrantAccepted,
    GrantRequest,
    UsageReport,
    UsageRow,
)
from services.api.periods import InvalidPeriod, day_range, hour_range
from services.api.resources import Resources, resources

router = APIRouter(prefix="/v1/accounts", tags=["accounts"], route_class=ScopedRoute)

AccountId = Annotated[str, Path(pattern=ACCOUNT_ID_PATTERN, description="the account id")]
Opened = Annotated[Resources, Depends(resources)]
ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (401, 403, 404, 422, 503)
}


def _not_found(account_id: str) -> ApiError:
    return ApiError(404, "account_not_found", f"no entries for account {account_id!r}")


@router.get("/{account_id}/balance", dependencies=[Depends(require("read"))], responses=ERRORS)
async def get_balance(account_id: AccountId, opened: Opened) -> Balance:
    return await balance_of(opened, account_id)


async def balance_of(opened: Resources, account_id: str) -> Balance:
    """The balance route's answer, for the route and for its fast path
    (services/api/hot_paths.py); raises its 404."""
    async with connection(opened.pool) as conn:
        row = await queries.balance(conn, account_id)
    if row is None:
        raise _not_found(account_id)
    return Balance.from_row(row)


@router.get("/{account_id}/entries", dependencies=[Depends(require("read"))], responses=ERRORS)
async def get_entries(
    account_id: AccountId,
    opened: Opened,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> EntriesPage:
    """Newest first. `credits` of an entry is its signed effect on the balance."""
    try:
        before = decode_cursor(cursor) if cursor else None
    except InvalidCursor as exc:
        raise ApiError(422, "invalid_cursor", str(exc)) from exc
    async with connection(opened.pool) as conn:
        rows = await queries.entries(conn, account_id, before, limit + 1)
        if not rows and before is None and not await queries.account_exists(conn, account_id):
            raise _not_found(account_id)
    page = rows[:limit]
    more = len(rows) > limit
    return EntriesPage(
        entries=[Entry.from_row(r) for r in page],
        next_cursor=encode_cursor(page[-1]["seq"]) if more else None,
    )


@router.get("/{account_id}/usage", dependencies=[Depends(require("read"))], responses=ERRORS)
async def get_usage(
    account_id: AccountId,
    opened: Opened,
    start: Annotated[str | None, Query(alias="from", max_length=64)] = None,
    end: Annotated[str | None, Query(alias="to", max_length=64)] = None,
    group_by: queries.GroupBy = "model",
) -> UsageReport:
    """From the daily rollup, in whole UTC days: `from` (a date, or a datetime with a time
    zone) is inclusive and rounds down to its day; `to` is exclusive and rounds up to the
    next midnight UTC. group_by=hour reads the hourly rollup in whole UTC hours, and only
    the last 7 days of it (an earlier or missing `from` starts 7 days ago). Rows are
    ordered by key."""
    async with connection(opened.pool) as conn:
        rows = await _usage_rows(conn, account_id, start, end, group_by)
        if not rows and not await queries.account_exists(conn, account_id):
            raise _not_found(account_id)
    return UsageReport(rows=[UsageRow.model_validate(r) for r in rows])


async def _usage_rows(
    conn: asyncpg.Connection,
    account_id: str,
    start: str | None,
    end: str | None,
    group_by: queries.GroupBy,
) -> list[dict[str, Any]]:
    try:
        if group_by == "hour":
            hours = hour_range(start, end, datetime.now(UTC))
            return await queries.usage_by_hour(conn, account_id, hours.first, hours.end)
        days = day_range(start, end)
    except InvalidPeriod as exc:
        raise ApiError(422, "invalid_period", str(exc)) from exc
    return await queries.usage(conn, account_id, days.first, days.end, group_by)


# 400: no Idempotency-Key or an undecodable body; 409: the key was used with another body;
# 413: over the body limit; 422: an invalid body, or past the balance limit.
MONEY_IN_ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (*ERRORS, 400, 409, 413)
}


@router.post(
    "/{account_id}/credits",
    status_code=202,
    dependencies=[Depends(require("admin"))],
    responses=MONEY_IN_ERRORS,
)
async def post_credits(
    account_id: AccountId,
    body: GrantRequest,
    opened: Opened,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> GrantAccepted:
    """Publishes a credits.granted to ledger.v1. The same key with the same body answers
    the same entry_id again; a key is scoped to its account. 422 `balance_limit` when the
    grant would take one of the account's totals past the largest the ledger holds."""
    key = check_key(idempotency_key)
    return GrantAccepted(entry_id=await opened.claims.grant(account_id, key, body))


@router.post(
    "/{account_id}/adjustments",
    status_code=202,
    dependencies=[Depends(require("admin"))],
    responses=MONEY_IN_ERRORS,
)
async def post_adjustments(
    account_id: AccountId,
    body: AdjustmentRequest,
    opened: Opened,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> GrantAccepted:
    """An operator's correction: publishes a credits.adjusted (signed credits, never 0,
    a reason) to ledger.v1, idempotent as credits are. A negative adjustment may take the
    balance below zero (the account is then `exhausted`)."""
    key = check_key(idempotency_key)
    return GrantAccepted(entry_id=await opened.claims.adjust(account_id, key, body))
