"""POST credits and adjustments: an idempotent ledger entry, published once per key.

The flow, safe under concurrency and across restarts:
1. claim the key: INSERT ... ON CONFLICT DO NOTHING, storing the exact event bytes
   (a new claim is refused first when it would take the account past BALANCE_LIMIT);
2. in a transaction, lock the key's row (FOR UPDATE), so requests with one key queue here;
3. a different body under the key is a 409; an unpublished row is published and marked.
A publish that fails, or a process that dies between 1 and 3, leaves the row unpublished:
the next request with the key, or the recovery sweep (services/api/recovery.py), sends the
same stored bytes. If the lost publish had in fact reached Kafka, the second copy has the
same entry_id and content, which the projector skips as a duplicate.

An Idempotency-Key belongs to its account, across credits and adjustments alike.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from schemas.entry_signing import SigningKey, signed
from schemas.events import (
    BALANCE_LIMIT,
    CATEGORY_OF_REASON,
    CreditsAdjusted,
    CreditsGranted,
    MoneyIn,
    dump,
)
from services.api import queries
from services.api.database import connection
from services.api.errors import ApiError
from services.api.models import AdjustmentRequest, GrantRequest
from services.common.faults import Fault, no_fault
from services.common.kafka import account_key
from services.projector import within_limit

# Fixed forever: entry ids derived from it are stored in the ledger.
ENTRY_NAMESPACE = UUID("5b0c7f5e-1c7a-4f7e-9b1d-3c2e6a8d4f10")
PUBLISH_TIMEOUT = 20.0  # seconds; the client gets a 503 and may retry with the same key
# Fault point (LEDGER_FAULT): the process kills itself after a claim, before its publish.
FAULT_AFTER_CLAIM = "api:after_claim"


def grant_entry_id(account_id: str, idempotency_key: str) -> UUID:
    # A newline cannot occur in an account id or a header value, so the pair is unambiguous.
    return uuid.uuid5(ENTRY_NAMESPACE, f"{account_id}\n{idempotency_key}")


def request_digest(body: GrantRequest | AdjustmentRequest) -> str:
    fields: dict[str, Any] = body.model_dump()
    if isinstance(body, AdjustmentRequest):
        # Both bodies have the same fields; the tag tells them apart under one key. Grants
        # keep their untagged digest, so keys stored before adjustments existed still match.
        fields["type"] = "credits.adjusted"
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def granted_event(account_id: str, entry_id: UUID, body: GrantRequest) -> CreditsGranted:
    return CreditsGranted(
        entry_id=entry_id,
        account_id=account_id,
        credits=body.credits,
        reason=body.reason,
        reference=body.reference,
        category=CATEGORY_OF_REASON[body.reason],
        occurred_at=datetime.now(UTC),
    )


def adjusted_event(account_id: str, entry_id: UUID, body: AdjustmentRequest) -> CreditsAdjusted:
    return CreditsAdjusted(
        entry_id=entry_id,
        account_id=account_id,
        credits=body.credits,
        reason=body.reason,
        reference=body.reference,
        occurred_at=datetime.now(UTC),
    )


def past_balance_limit(flows: tuple[int, int] | None, event: MoneyIn) -> str | None:
    """Why `event` would take the account's inflow or outflow past BALANCE_LIMIT, or None:
    the projector's own rule (ledger.within_limit), so an entry the API accepts is one the
    projector applies."""
    if within_limit(flows or (0, 0), event):
        return None
    return (
        f"{event.credits} credits would take the account's total "
        f"{'inflow' if event.credits > 0 else 'outflow'} past {BALANCE_LIMIT}"
    )


@dataclass(frozen=True)
class Publisher:
    producer: AIOKafkaProducer
    topic: str

    async def publish(self, account_id: str, value: bytes) -> None:
        await self.publish_many([(account_id, value)])

    async def publish_many(self, messages: Sequence[tuple[str, bytes]]) -> None:
        """Returns once Kafka acknowledged every message; 503 when it did not in time."""
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT):
                sent = [
                    await self.producer.send(self.topic, value, key=account_key(account_id))
                    for account_id, value in messages
                ]
                await asyncio.gather(*sent)
        except (KafkaError, TimeoutError) as exc:
            raise ApiError(
                503, "kafka_unavailable", f"could not publish to {self.topic}: {exc!r}"
            ) from exc


@dataclass(frozen=True)
class Claims:
    """The claim -> publish -> mark flow of credits and adjustments."""

    pool: asyncpg.Pool
    publisher: Publisher
    signing_key: SigningKey
    after_claim: Fault = no_fault  # the fault point api:after_claim

    # Every entry is signed before it is stored, so a retry publishes the same signed bytes;
    # only entries this API wrote add Credits (docs/contracts.md, Signed money-in entries).
    async def grant(self, account_id: str, key: str, body: GrantRequest) -> UUID:
        entry_id = grant_entry_id(account_id, key)
        event = signed(granted_event(account_id, entry_id, body), self.signing_key)
        return await self.accept(account_id, key, request_digest(body), event)

    async def adjust(self, account_id: str, key: str, body: AdjustmentRequest) -> UUID:
        entry_id = grant_entry_id(account_id, key)
        event = signed(adjusted_event(account_id, entry_id, body), self.signing_key)
        return await self.accept(account_id, key, request_digest(body), event)

    async def accept(self, account_id: str, key: str, digest: str, event: MoneyIn) -> UUID:
        """Returns the entry_id `key` stands for, publishing its event if not yet done."""
        async with connection(self.pool) as conn:
            if not await queries.key_claimed(conn, account_id, key):
                await self.claim(conn, account_id, key, digest, event)
            async with conn.transaction():
                claimed = await queries.lock_key(conn, account_id, key)
                if claimed["request_digest"] != digest:
                    raise ApiError(
                        409,
                        "idempotency_conflict",
                        "this Idempotency-Key was already used with a different body",
                    )
                if claimed["published_at"] is None:
                    await self.publisher.publish(account_id, claimed["event"].encode())
                    await queries.mark_published(conn, account_id, key)
        stored: UUID = claimed["entry_id"]
        return stored

    async def claim(
        self, conn: asyncpg.Connection, account_id: str, key: str, digest: str, event: MoneyIn
    ) -> None:
        if (why := past_balance_limit(await queries.flows(conn, account_id), event)) is not None:
            raise ApiError(422, "balance_limit", why)
        await queries.claim_key(conn, account_id, key, digest, event.entry_id, dump(event).decode())
        self.after_claim()
