"""`ledger serve projector`: ledger.v1 -> PostgreSQL, one transaction per batch.

Kafka offsets are committed only after the PostgreSQL commit, so a crash in between makes
Kafka redeliver the batch, which apply then counts as duplicates (exactly once in effect).
Fetching and parsing the next batch overlaps with writing the current one. What a batch
holds never stops the loop (apply.py isolates it); only an unreachable PostgreSQL pauses it.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from schemas.entry_signing import EntryKeyError, VerifyKeys, read_verify_keys
from services.alerts.relay import relay
from services.common import batching, kafka
from services.common.faults import Fault, fault_point, no_fault
from services.common.settings import Settings, load_settings
from services.common.signals import stop_on_signals
from services.common.throughput import REPORT_EVERY_S, Throughput
from services.common.topics import Topics, create_topics
from services.projector.apply import CONNECTION_ERRORS, Batch, apply, prepare
from services.projector.store import ApplyResult, open_projection

log = logging.getLogger("services.projector")

FETCH_TIMEOUT_MS = 500
MAX_BACKOFF_SECONDS = 5.0
FAULT_AFTER_DB_COMMIT = "projector:after_db_commit"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Fetched:
    """A fetched batch, prepared, and the offsets to commit once it is applied."""

    prepared: Batch
    commit: dict[TopicPartition, int]


def run() -> int:
    settings = load_settings()
    try:
        keys = read_verify_keys(settings.ledger_entry_verify_keys)
    except EntryKeyError as error:
        print(f"ledger serve projector: refusing to start: {error}", file=sys.stderr)
        return 2
    batching.tune_for_parsing_threads()
    try:
        # Read once here, at the edge: the loop only calls what it is given.
        after_commit = fault_point(settings, FAULT_AFTER_DB_COMMIT)
        batching.run(serve(settings, keys, after_commit))
    except Exception:
        log.exception("projector stopped by an error; uncommitted batches will be redelivered")
        return 1
    return 0


async def serve(settings: Settings, keys: VerifyKeys, after_commit: Fault = no_fault) -> None:
    stop = stop_on_signals()
    await create_topics(settings)
    topic = Topics.from_settings(settings).ledger
    group = f"{settings.ledger_topic_prefix}ledger-projector"
    pool = await retry(partial(open_projection, settings.database_url), stop)
    if pool is None:
        return
    consumer = kafka.consumer(settings, topic, group_id=group)
    try:
        await consumer.start()
        log.info("projector ready: consuming %s as group %s", topic, group)
        reporter = asyncio.create_task(report(window := progress_window(time.monotonic())))
        # The alert outbox's relay runs beside the loop; its failures stay its own.
        relaying = asyncio.create_task(relay(settings, pool, stop))
        try:
            await project(consumer, pool, topic, keys, stop, window, after_commit)
        finally:
            reporter.cancel()
            relaying.cancel()
            with suppress(asyncio.CancelledError):
                await relaying
    finally:
        await consumer.stop()
        await pool.close()
    log.info("projector stopped cleanly")


async def project(
    consumer: AIOKafkaConsumer,
    pool: asyncpg.Pool,
    topic: str,
    keys: VerifyKeys,
    stop: asyncio.Event,
    window: Throughput,
    after_commit: Fault = no_fault,
) -> None:
    """Applies batch after batch until stop; the next batch is fetched meanwhile, and a
    batch's offsets are committed to Kafka while the next one is written (in order: one
    commit at a time). `after_commit` runs between a batch's PostgreSQL commit and its
    Kafka commit: the fault point projector:after_db_commit."""
    upcoming = asyncio.create_task(fetch(consumer, keys))
    committing: asyncio.Task[None] | None = None
    try:
        while not stop.is_set():
            batch = await upcoming
            upcoming = asyncio.create_task(fetch(consumer, keys))
            if not batch.prepared.records:
                continue
            result = await retry(partial(apply_fetched, pool, topic, batch), stop)
            if result is None:
                return
            after_commit()
            if committing is not None:
                await committing
            committing = asyncio.create_task(commit(consumer, batch.commit))
            report_news(result)
            window.add(len(batch.prepared.records), **result.counts())
    finally:
        # A fetched batch that is not applied is not committed either: Kafka redelivers it.
        upcoming.cancel()
        with suppress(asyncio.CancelledError):
            await upcoming
        if committing is not None:
            await committing


async def fetch(consumer: AIOKafkaConsumer, keys: VerifyKeys) -> Fetched:
    fetched = await consumer.getmany(timeout_ms=FETCH_TIMEOUT_MS, max_records=kafka.BATCH_RECORDS)
    # Parsing takes longer than PostgreSQL takes to write the batch before it. In a worker
    # thread it leaves the event loop free to answer PostgreSQL at once (the loop waits at
    # most one GIL switch interval), so the two overlap instead of taking turns.
    return await asyncio.to_thread(parse, fetched, keys)


def parse(
    fetched: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]], keys: VerifyKeys
) -> Fetched:
    commit = {tp: msgs[-1].offset + 1 for tp, msgs in fetched.items() if msgs}
    return Fetched(prepare([m for msgs in fetched.values() for m in msgs], keys), commit)


async def apply_fetched(pool: asyncpg.Pool, topic: str, batch: Fetched) -> ApplyResult:
    async with pool.acquire() as conn:
        return await apply(conn, topic, batch.prepared)


async def retry(attempt: Callable[[], Awaitable[T]], stop: asyncio.Event) -> T | None:
    """Repeats `attempt` while PostgreSQL is unreachable; None when stopped meanwhile."""
    delay = 0.1
    while True:
        try:
            return await attempt()
        except CONNECTION_ERRORS as error:
            if stop.is_set():
                log.warning("stopping while PostgreSQL is unreachable (%r); not committed", error)
                return None
            log.warning("PostgreSQL unreachable (%r); retrying in %.1fs", error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_SECONDS)


async def commit(consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
    try:
        await consumer.commit(offsets)
    except (CommitFailedError, IllegalStateError) as error:
        # The partitions moved to another consumer, which re-reads from the last commit;
        # the batch is already in PostgreSQL, so those entries count as duplicates there.
        log.warning("offsets %s not committed after a rebalance: %r", offsets, error)


def report_news(result: ApplyResult) -> None:
    for c in result.new_conflicts:
        log.warning(
            "conflict: entry %s (account %s) at partition %d offset %d differs from the "
            "applied entry; stored in conflicts, not applied",
            c.entry.entry_id, c.entry.account_id, c.partition, c.offset,
        )  # fmt: skip
    for r in result.new_rejections:
        log.warning(
            "rejected: partition %d offset %d (%s): %s",
            r.partition, r.offset, r.reason, r.error[:500],
        )  # fmt: skip


def progress_window(now: float) -> Throughput:
    names = ("applied", "duplicates", "conflicts", "rejected")
    return Throughput("projector", "entries", now, names)


async def report(window: Throughput) -> None:
    while True:
        await asyncio.sleep(REPORT_EVERY_S)
        now = time.monotonic()
        log.info(window.line(now))
        window.reset(now)
