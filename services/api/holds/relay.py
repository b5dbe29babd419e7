"""The holds outbox to holds.v1: at least once, in decision order, never in the way.

Each decision writes its event's row to holds.outbox in the transaction that makes it
(migrations/002_holds.sql), so a crash after the commit loses nothing: the relay of the next
API process to start publishes it. The relay publishes a batch, waits for Kafka's
acknowledgement, and only then deletes the batch's rows; a crash in between publishes them
again (consumers tell a repeat by its hold_id and type). One relay at a time, across every
API process (an advisory lock), so one account's events keep their order. A relay that
fails (Kafka or PostgreSQL away) logs, waits and tries again; the API keeps answering.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from contextlib import suppress
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from schemas.events import HoldPlaced, HoldRefused, HoldReleased, dump
from services.api.holds import store
from services.common.kafka import account_key

log = logging.getLogger(__name__)

# Fault point for the outbox test: the API process dies right after a decision's commit,
# before any publish and before it answers (services/api/routes/holds.py).
FAULT_AFTER_HOLD_COMMIT = "api:after_hold_commit"
BATCH = 2000
POLL_SECONDS = 0.2  # how soon another API process's decisions are picked up
PUBLISH_TIMEOUT = 20.0
MAX_BACKOFF_SECONDS = 5.0


def encode(row: Mapping[str, Any]) -> bytes:
    """The holds.v1 event of an outbox row. The row was written from validated requests,
    so the event is built without validating again (a relay must never stop on a row)."""
    kind = row["type"]
    common = {
        "hold_id": row["hold_id"],
        "account_id": row["account_id"],
        "occurred_at": row["occurred_at"],
    }
    if kind == "hold.placed":
        event: HoldPlaced | HoldRefused | HoldReleased = HoldPlaced.model_construct(
            **common,
            credits=row["credits"],
            idempotency_key=row["idempotency_key"],
            expires_at=row["expires_at"],
        )
    elif kind == "hold.refused":
        event = HoldRefused.model_construct(
            **common,
            credits=row["credits"],
            available=int(row["available"]),
            idempotency_key=row["idempotency_key"],
        )
    else:
        event = HoldReleased.model_construct(**common)
    return dump(event)


class HoldRelay:
    def __init__(self, pool: asyncpg.Pool, producer: AIOKafkaProducer, topic: str) -> None:
        self.pool = pool
        self.producer = producer
        self.topic = topic
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A decision was committed here: publish it without waiting for the next poll."""
        self._wake.set()

    async def run(self) -> None:
        delay = 0.1
        while True:
            with suppress(TimeoutError):
                async with asyncio.timeout(POLL_SECONDS):
                    await self._wake.wait()
            self._wake.clear()
            try:
                while await self.publish_pending() == BATCH:
                    pass
                delay = 0.1
            except Exception as error:  # the API must outlive its relay
                log.warning("holds relay: %r; trying again in %.1fs", error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_SECONDS)

    async def publish_pending(self) -> int:
        """Publishes one batch of the outbox; answers how many events it published."""
        async with self.pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval(store.RELAY_LOCK):
                return 0  # another process relays now
            rows = await conn.fetch(store.PENDING, BATCH)
            if not rows:
                return 0
            async with asyncio.timeout(PUBLISH_TIMEOUT):
                # Sent without awaiting each; the producer keys by account, so one
                # account's events keep their order.
                sent = [
                    await self.producer.send(
                        self.topic, encode(r), key=account_key(r["account_id"])
                    )
                    for r in rows
                ]
                await asyncio.gather(*sent)
            await conn.execute(store.PUBLISHED, [r["seq"] for r in rows])
            return len(rows)
