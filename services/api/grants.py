"""POST credits: an idempotent credits.granted, published at most once per key.

The flow, safe under concurrency and across restarts:
1. claim the key: INSERT ... ON CONFLICT DO NOTHING, storing the exact event bytes;
2. in a transaction, lock the key's row (FOR UPDATE), so requests with one key queue here;
3. a different body under the key is a 409; an unpublished row is published and marked.
A publish that fails leaves the row unpublished, and the next request with the key sends
the same stored bytes again. If the failed publish had in fact reached Kafka, the second
copy has the same entry_id and content, which the projector skips as a duplicate.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from schemas.events import CreditsGranted, dump
from services.api import queries
from services.api.database import connection
from services.api.errors import ApiError
from services.api.models import GrantRequest
from services.common.kafka import account_key

# Fixed forever: entry ids derived from it are stored in the ledger.
ENTRY_NAMESPACE = UUID("5b0c7f5e-1c7a-4f7e-9b1d-3c2e6a8d4f10")
PUBLISH_TIMEOUT = 20.0  # seconds; the client gets a 503 and may retry with the same key
MAX_KEY_LENGTH = 255


def grant_entry_id(account_id: str, idempotency_key: str) -> UUID:
    # A newline cannot occur in an account id or a header value, so the pair is unambiguous.
    return uuid.uuid5(ENTRY_NAMESPACE, f"{account_id}\n{idempotency_key}")


def request_digest(body: GrantRequest) -> str:
    canonical = json.dumps(body.model_dump(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def granted_event(account_id: str, entry_id: UUID, body: GrantRequest) -> CreditsGranted:
    return CreditsGranted(
        entry_id=entry_id,
        account_id=account_id,
        credits=body.credits,
        reason=body.reason,
        reference=body.reference,
        occurred_at=datetime.now(UTC),
    )


def check_key(idempotency_key: str | None) -> str:
    if idempotency_key is None:
        raise ApiError(400, "missing_idempotency_key", "the Idempotency-Key header is required")
    if not 0 < len(idempotency_key) <= MAX_KEY_LENGTH:
        raise ApiError(
            422,
            "invalid_idempotency_key",
            f"Idempotency-Key must be 1..{MAX_KEY_LENGTH} characters",
        )
    return idempotency_key


@dataclass(frozen=True)
class Publisher:
    producer: AIOKafkaProducer
    topic: str

    async def publish(self, account_id: str, value: bytes) -> None:
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT):
                await self.producer.send_and_wait(self.topic, value, key=account_key(account_id))
        except (KafkaError, TimeoutError) as exc:
            raise ApiError(
                503, "kafka_unavailable", f"could not publish to {self.topic}: {exc!r}"
            ) from exc


async def grant(
    pool: asyncpg.Pool, publisher: Publisher, account_id: str, key: str, body: GrantRequest
) -> UUID:
    """Returns the entry_id of the grant `key` stands for, publishing it if not yet done."""
    entry_id = grant_entry_id(account_id, key)
    digest = request_digest(body)
    event = dump(granted_event(account_id, entry_id, body)).decode()
    async with connection(pool) as conn:
        await queries.claim_key(conn, account_id, key, digest, entry_id, event)
        async with conn.transaction():
            claimed = await queries.lock_key(conn, account_id, key)
            if claimed["request_digest"] != digest:
                raise ApiError(
                    409,
                    "idempotency_conflict",
                    "this Idempotency-Key was already used with a different body",
                )
            if claimed["published_at"] is None:
                await publisher.publish(account_id, claimed["event"].encode())
                await queries.mark_published(conn, account_id, key)
    stored: UUID = claimed["entry_id"]
    return stored
