"""A hold decision as the routes answer it: a status code and a JSON body (docs/contracts.md,
Holds). The single route and each result of POST /v1/holds answer alike."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.api.errors import ApiError
from services.pricing.pricebook import Rejection


@dataclass(frozen=True, slots=True)
class Answer:
    code: int
    body: dict[str, Any]


def error(code: int, name: str, detail: str, **extra: Any) -> Answer:
    return Answer(code, {"error": name, "detail": detail, **extra})


def timestamp(at: datetime) -> str:
    text = at.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def decided(account_id: str, row: dict[str, Any]) -> Answer:
    """The answer to a row of holds.place / holds.place_many."""
    outcome = row["outcome"]
    available = int(row["available"])
    if outcome == "refused":
        return error(
            402,
            "insufficient_credits",
            f"{row['credits']} credits requested, {available} available",
            available=available,
            requested=row["credits"],
        )
    if outcome == "conflict":
        return error(
            409,
            "idempotency_conflict",
            "this Idempotency-Key was already used with a different body",
        )
    return Answer(
        201 if outcome == "placed" else 200,
        {
            "hold_id": row["hold_id"],
            "account_id": account_id,
            "credits": row["credits"],
            "expires_at": timestamp(row["expires_at"]),
            "available": available,
            "status": row["status"],
        },
    )


def unpriced(rejection: Rejection) -> Answer:
    return error(422, rejection.code, rejection.detail)


def released(hold_id: str, outcome: str) -> dict[str, Any]:
    """The body of a DELETE; raises the route's 404 or 409."""
    if outcome == "not_found":
        raise ApiError(404, "hold_not_found", f"no hold {hold_id!r} on this account")
    if outcome == "settled":
        raise ApiError(409, "hold_settled", "the hold was settled by its usage already")
    return {"hold_id": hold_id, "status": "released"}


def listed(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "hold_id": row["hold_id"],
        "credits": row["credits"],
        "status": row["status"],
        "settled_credits": row["settled_credits"],
        "expires_at": timestamp(row["expires_at"]),
        "created_at": timestamp(row["created_at"]),
    }
