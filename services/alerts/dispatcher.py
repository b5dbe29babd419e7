"""`ledger serve webhooks`: alerts.v1 -> the accounts' webhook URLs, via a delivery log.

Two loops share one process:
- intake reads alerts.v1 and writes a pending delivery (PostgreSQL) for each alert of an
  account with a webhook URL, then commits the Kafka offsets: an alert is never lost, and
  one read twice is the same row (alert_id is the key);
- the sender claims due deliveries from that log and attempts them concurrently, at most
  PER_HOST at a time for one receiver and CAPACITY in all, so a slow or dead receiver holds
  up no one else. Every attempt is recorded with its outcome and the next one scheduled
  (services/alerts/schedule.py). A restart resumes from the log: pending retries keep
  their time, and an attempt cut short by a crash is retried once its lease expires.

The consumer is the project's aiokafka consumer (services/common/kafka.py), so the Kafka
security settings apply here as in every other service.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from pydantic import ValidationError

from schemas.events import parse_alert
from services.alerts import delivery, store
from services.alerts.schedule import next_step
from services.common import kafka
from services.common.settings import Settings, load_settings
from services.common.signals import stop_on_signals
from services.common.topics import Topics, create_topics
from services.projector import open_projection

log = logging.getLogger("services.alerts")

CAPACITY = 64  # attempts in flight, all receivers together
PER_HOST = 4  # attempts in flight for one receiver (host:port)
POLL_SECONDS = 0.25
FETCH_TIMEOUT_MS = 500
MAX_RECORDS = 500
LEASE_MARGIN_SECONDS = 5.0
DRAIN_SECONDS = 10.0
MAX_BACKOFF_SECONDS = 5.0
# What a PostgreSQL outage looks like from here: waited out, never a reason to stop.
UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
)


def run() -> int:
    try:
        asyncio.run(serve(load_settings()))
    except Exception:
        log.exception("webhooks stopped by an error; pending deliveries resume at restart")
        return 1
    return 0


async def serve(settings: Settings) -> None:
    stop = stop_on_signals()
    await create_topics(settings)
    topic = Topics.from_settings(settings).alerts
    group = f"{settings.ledger_topic_prefix}ledger-webhooks"
    # Applies every pending migration of the database first, the alerts' tables among them.
    pool = await open_projection(settings.database_url)
    consumer = kafka.consumer(settings, topic, group_id=group)
    http = delivery.client(settings.ledger_webhook_timeout_seconds)
    sender = Sender(settings, pool, http)
    try:
        await consumer.start()
        log.info("ready: webhooks consuming %s as group %s", topic, group)
        await run_both(intake(consumer, pool, stop, sender.wake), sender.run(stop), stop)
    finally:
        await consumer.stop()
        await http.aclose()
        await pool.close()
    log.info("webhooks stopped cleanly")


async def run_both(
    intake_loop: Coroutine[Any, Any, None],
    sender_loop: Coroutine[Any, Any, None],
    stop: asyncio.Event,
) -> None:
    """Until stop, or until either loop fails: then both stop and the failure is raised
    (the process exits 1 and, restarted, resumes from the delivery log)."""
    tasks = [asyncio.create_task(intake_loop), asyncio.create_task(sender_loop)]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    stop.set()
    for outcome in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(outcome, BaseException):
            raise outcome


async def intake(
    consumer: AIOKafkaConsumer, pool: asyncpg.Pool, stop: asyncio.Event, wake: asyncio.Event
) -> None:
    """alerts.v1 -> pending deliveries; offsets are committed only after they are stored."""
    while not stop.is_set():
        fetched = await consumer.getmany(timeout_ms=FETCH_TIMEOUT_MS, max_records=MAX_RECORDS)
        records = [m for messages in fetched.values() for m in messages]
        if not records:
            continue
        alerts = []
        for record in records:
            try:
                alert = parse_alert(record.value or b"")
            except ValidationError as exc:
                # Only the projector's relay writes alerts.v1; anything else is not an
                # alert this service could deliver, so it is logged and passed over.
                log.error("not an alert at partition %d offset %d: %s",
                          record.partition, record.offset, exc)  # fmt: skip
                continue
            alerts.append((alert.alert_id, alert.account_id, (record.value or b"").decode()))
        if alerts and not await _store_until_done(pool, alerts, stop):
            return  # stopped while PostgreSQL was away: not committed, read again later
        await _commit(consumer, {tp: ms[-1].offset + 1 for tp, ms in fetched.items() if ms})
        wake.set()


async def _store_until_done(
    pool: asyncpg.Pool, alerts: list[tuple[UUID, str, str]], stop: asyncio.Event
) -> bool:
    delay = 0.1
    while True:
        try:
            async with pool.acquire() as conn:
                await store.enqueue(conn, alerts)
            return True
        except UNAVAILABLE as exc:
            if stop.is_set():
                return False
            log.warning("PostgreSQL unreachable (%r); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_SECONDS)


async def _commit(consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
    try:
        await consumer.commit(offsets)
    except (CommitFailedError, IllegalStateError) as exc:
        # Another consumer took the partitions and reads from the last commit: the alerts
        # it reads again are already stored, so they add nothing.
        log.warning("offsets %s not committed after a rebalance: %r", offsets, exc)


class Sender:
    """Claims due deliveries and attempts them, each in a task of its own."""

    def __init__(self, settings: Settings, pool: asyncpg.Pool, http: httpx.AsyncClient) -> None:
        self.pool = pool
        self.http = http
        self.delays = settings.ledger_webhook_retry_seconds
        self.allow_private = settings.ledger_webhook_allow_private
        self.timeout = settings.ledger_webhook_timeout_seconds
        # An attempt ends within `timeout` (delivery.attempt); the lease outlasts it, so
        # only an attempt cut short by a crash is made again when the lease expires.
        self.lease = self.timeout + LEASE_MARGIN_SECONDS
        self.wake = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()
        self.per_host: dict[str, int] = {}

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.wake.clear()
            await self.claim_and_start()
            with suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), POLL_SECONDS)
        await self.drain()

    async def claim_and_start(self) -> None:
        free = CAPACITY - len(self.tasks)
        if free <= 0:
            return
        try:
            async with self.pool.acquire() as conn:
                claimed = await store.claim(conn, self.per_host, PER_HOST, free, self.lease)
        except UNAVAILABLE as exc:
            log.warning("PostgreSQL unreachable (%r); deliveries wait", exc)
            return
        for item in claimed:
            self.per_host[item.host] = self.per_host.get(item.host, 0) + 1
            task = asyncio.create_task(self.deliver(item))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def deliver(self, claimed: store.Claimed) -> None:
        try:
            started_at = datetime.now(UTC)
            began = time.perf_counter()
            outcome = await delivery.attempt(self.http, claimed, self.allow_private, self.timeout)
            duration_ms = int((time.perf_counter() - began) * 1000)
            step = next_step(outcome, claimed.attempts + 1, self.delays)
            async with self.pool.acquire() as conn:
                await store.record_attempt(conn, claimed, started_at, duration_ms, outcome, step)
            log.info(
                "alert %s to %s: attempt %d -> %s (%s)%s",
                claimed.alert_id, claimed.host, claimed.attempts + 1, step.status,
                outcome.status_code or outcome.error,
                f", again in {step.retry_in:g}s" if step.retry_in is not None else "",
            )  # fmt: skip
        except UNAVAILABLE as exc:
            # The attempt is not recorded: its lease expires and it is made again.
            log.warning("attempt for %s not recorded (%r); retried later", claimed.alert_id, exc)
        except Exception:  # one delivery's defect must not stop the others; its lease expires
            log.exception("attempt for %s failed unexpectedly; retried later", claimed.alert_id)
        finally:
            self.per_host[claimed.host] -= 1
            self.wake.set()

    async def drain(self) -> None:
        """Lets attempts in flight finish (briefly); the rest are retried after a restart."""
        if not self.tasks:
            return
        _, pending = await asyncio.wait(set(self.tasks), timeout=DRAIN_SECONDS)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
