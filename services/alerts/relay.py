"""The outbox relay: alerts the projector stored go out on alerts.v1, keyed by account.

It runs as a task beside the projector's loop (services/projector/service.py) and never
stops it: a broker or database failure here is logged and retried with a growing delay
while the projector goes on applying batches, whose alerts wait in the outbox meanwhile.
An alert is marked published after Kafka acknowledged it; a crash in between publishes it
again with the same alert_id, which consumers deduplicate (the webhooks service does).
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

import asyncpg
from aiokafka import AIOKafkaProducer

from services.alerts import store
from services.common import kafka
from services.common.settings import Settings
from services.common.topics import Topics

log = logging.getLogger("services.alerts.relay")

BATCH = 1000
POLL_SECONDS = 0.2
SEND_TIMEOUT_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 10.0


async def relay(settings: Settings, pool: asyncpg.Pool, stop: asyncio.Event) -> None:
    """Publishes the live outbox until `stop` is set. Returns only then.

    The producer is started only once there is an alert to publish: a projector whose
    accounts raise none pays one small query per poll and nothing else.
    """
    topic = Topics.from_settings(settings).alerts
    producer: AIOKafkaProducer | None = None
    delay = POLL_SECONDS
    try:
        while not stop.is_set():
            try:
                if await pending(pool):
                    if producer is None:
                        producer = kafka.producer(settings)
                        await producer.start()
                    while await publish_once(pool, producer, topic) == BATCH:
                        pass  # a backlog: the next batch at once
                delay = POLL_SECONDS
            except Exception:  # the projector must keep running: logged, then tried again
                log.exception("alert relay failed; retrying in %.1fs", delay)
                if producer is not None:
                    await _stop_quietly(producer)
                    producer = None
                delay = min(delay * 2, MAX_BACKOFF_SECONDS)
            await _wait(stop, delay)
    finally:
        if producer is not None:
            await _stop_quietly(producer)


async def pending(pool: asyncpg.Pool) -> bool:
    async with pool.acquire() as conn:
        return await store.has_unpublished(conn)


async def _stop_quietly(producer: AIOKafkaProducer) -> None:
    try:
        await producer.stop()
    except Exception:  # a producer that failed may fail to stop too; it is dropped anyway
        log.warning("alert relay's producer did not stop cleanly", exc_info=True)


async def publish_once(pool: asyncpg.Pool, producer: AIOKafkaProducer, topic: str) -> int:
    """Publishes up to BATCH unpublished alerts, oldest first; returns how many."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await store.unpublished(conn, BATCH)
        if not rows:
            return 0
        messages = [(kafka.account_key(r["account_id"]), r["event"].encode()) for r in rows]
        async with asyncio.timeout(SEND_TIMEOUT_SECONDS):
            # Sent without awaiting each one, keyed by account (one account's alerts in
            # order); marked published only once Kafka acknowledged all of them.
            sent = [await producer.send(topic, value, key=key) for key, value in messages]
            await asyncio.gather(*sent)
        await store.mark_published(conn, [r["seq"] for r in rows])
    log.info("published %d alerts on %s", len(rows), topic)
    return len(rows)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
