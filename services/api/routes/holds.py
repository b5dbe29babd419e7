"""Hold routes (docs/contracts.md, Holds): place, release and list; many places at once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from schemas.events import ACCOUNT_ID_PATTERN
from services.api.auth import require
from services.api.authenticate import ScopedRoute
from services.api.cursor import InvalidCursor, decode_cursor, encode_cursor
from services.api.database import connection
from services.api.errors import ApiError
from services.api.holds import answers, store
from services.api.holds.answers import Answer
from services.api.holds.requests import BatchItem, BatchRequest, HoldRequest
from services.api.idempotency import INVALID, check_key, key_problem
from services.api.models import ErrorBody
from services.api.resources import Resources, resources
from services.pricing.pricebook import Rejection

router = APIRouter(tags=["holds"], route_class=ScopedRoute)

AccountId = Annotated[str, Path(pattern=ACCOUNT_ID_PATTERN, description="the account id")]
# What the API issues is a UUID; the pattern keeps anything PostgreSQL text cannot hold out.
HoldId = Annotated[str, Path(pattern=ACCOUNT_ID_PATTERN, description="the hold id")]
Opened = Annotated[Resources, Depends(resources)]
Status = Literal["active", "settled", "released", "expired"]
ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 413, 422, 503)
}


def _respond(answer: Answer) -> JSONResponse:
    return JSONResponse(answer.body, status_code=answer.code)


@router.post(
    "/v1/accounts/{account_id}/holds",
    status_code=201,
    dependencies=[Depends(require("gateway"))],
    responses={**ERRORS, 200: {}, 402: {"model": ErrorBody}, 409: {"model": ErrorBody}},
)
async def post_hold(
    account_id: AccountId,
    body: HoldRequest,
    opened: Opened,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    """Holds `credits` (0 for a free model, or the request's worst-case price) when the
    account's available credits cover it: 201; the same key and body again: 200 with the
    hold as it is now, whose `status` says whether it still admits (only `active` does);
    402 `insufficient_credits` with `available` and `requested`; 409 `idempotency_conflict`;
    400 `invalid_idempotency_key` for a key that is not 1..255 printable ASCII characters
    without a leading or trailing space."""
    key = check_key(idempotency_key)
    return _respond(await place_one(opened, account_id, key, body))


async def place_one(opened: Resources, account_id: str, key: str, body: HoldRequest) -> Answer:
    """The decision of POST /v1/accounts/{account_id}/holds, for the route and for its
    fast path (services/api/hot_paths.py)."""
    credits = body.price(opened.pricebook, datetime.now(UTC))
    if isinstance(credits, Rejection):
        return answers.unpriced(credits)
    async with connection(opened.pool) as conn:
        row = await store.place(conn, account_id, key, body.digest(), credits, body.ttl_seconds)
    if row["outcome"] in ("placed", "refused"):
        opened.faults.after_hold_commit()
        opened.relay.wake()
    return answers.decided(account_id, row)


@router.delete(
    "/v1/accounts/{account_id}/holds/{hold_id}",
    dependencies=[Depends(require("gateway"))],
    responses={**ERRORS, 404: {"model": ErrorBody}, 409: {"model": ErrorBody}},
)
async def delete_hold(account_id: AccountId, hold_id: HoldId, opened: Opened) -> dict[str, Any]:
    """Releases a hold: 200 (again 200); 409 `hold_settled`; 404 `hold_not_found`."""
    async with connection(opened.pool) as conn:
        outcome = await store.release(conn, account_id, hold_id)
    opened.relay.wake()
    return answers.released(hold_id, outcome)


@router.get(
    "/v1/accounts/{account_id}/holds",
    dependencies=[Depends(require("read"))],
    responses=ERRORS,
)
async def get_holds(
    account_id: AccountId,
    opened: Opened,
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> dict[str, Any]:
    """Newest first; `status` as it is now (an active hold past expires_at is expired)."""
    try:
        before = decode_cursor(cursor) if cursor else None
    except InvalidCursor as exc:
        raise ApiError(422, "invalid_cursor", str(exc)) from exc
    async with connection(opened.pool) as conn:
        rows = await store.list_holds(conn, account_id, before, status, limit + 1)
    page = rows[:limit]
    more = len(rows) > limit
    return {
        "holds": [answers.listed(r) for r in page],
        "next_cursor": encode_cursor(page[-1]["seq"]) if more else None,
    }


@router.post(
    "/v1/holds",
    dependencies=[Depends(require("gateway"))],
    responses=ERRORS,
)
async def post_holds(body: BatchRequest, opened: Opened) -> dict[str, Any]:
    """Up to 1,000 holds decided in one round trip; `results` in the order given, each
    `{"code", "body"}` as the single route would answer it (a bad item is its own 4xx)."""
    return await place_batch(opened, body)


async def place_batch(opened: Resources, body: BatchRequest) -> dict[str, Any]:
    """The answer of POST /v1/holds, for the route and for its fast path."""
    now = datetime.now(UTC)
    results: list[Answer | None] = [None] * len(body.holds)
    columns: tuple[list[Any], ...] = ([], [], [], [], [])
    positions: list[int] = []
    for position, raw in enumerate(body.holds):
        item = _read_item(raw)
        if isinstance(item, Answer):
            results[position] = item
            continue
        credits = item.price(opened.pricebook, now)
        if isinstance(credits, Rejection):
            results[position] = answers.unpriced(credits)
            continue
        for column, value in zip(
            columns,
            (item.account_id, item.idempotency_key, item.digest(), credits, item.ttl_seconds),
            strict=True,
        ):
            column.append(value)
        positions.append(position)
    if positions:
        async with connection(opened.pool) as conn:
            rows = await store.place_many(conn, columns)
        for row in rows:
            index = positions[row["ord"] - 1]
            results[index] = answers.decided(columns[0][row["ord"] - 1], row)
        opened.relay.wake()
    return {"results": [{"code": r.code, "body": r.body} for r in results if r is not None]}


def _read_item(raw: Any) -> BatchItem | Answer:
    """The item, or its answer as the single route would give it: a body that breaks its
    rules is 422 `validation_error`, then a bad key 400 `invalid_idempotency_key`."""
    try:
        item = BatchItem.model_validate(raw)
    except ValidationError as error:
        return answers.error(422, "validation_error", _describe(error))
    if (problem := key_problem(item.idempotency_key)) is not None:
        return answers.error(400, INVALID, problem)
    return item


def _describe(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or '(hold)'}: {e['msg']}"
        for e in error.errors(include_url=False, include_input=False)
    )
