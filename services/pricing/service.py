"""`ledger serve pricing`: usage.v1 in, credits.debited and usage.rejected out, exactly once.

Each getmany batch is one Kafka transaction holding its debits, its rejections and the
consumed offsets, so a batch's output and its progress commit together or not at all.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from services.common import batching
from services.common.batching import one_malloc_arena, quiet_garbage_collector
from services.common.kafka import BATCH_RECORDS, connection
from services.common.kafka import consumer as make_consumer
from services.common.settings import Settings, load_settings
from services.common.signals import stop_on_signals
from services.common.throughput import Throughput
from services.common.topics import Topics, create_topics
from services.pricing.batch import PricedBatch, price_batch
from services.pricing.pricebook import PriceBook, PriceBookError, load_pricebook
from services.pricing.rebalance import RebalanceGuard
from services.pricing.transactions import commit_batch

log = logging.getLogger("services.pricing")

POLL_TIMEOUT_MS = 200
# Short, so a transaction left open by a crash that no successor fences is aborted soon.
TRANSACTION_TIMEOUT_MS = 15_000
# A batch must fit into one produce request; the broker's default limit is 1 MiB.
MAX_BATCH_BYTES = 512 * 1024


def transactional_id(prefix: str, instance: str) -> str:
    """Stable per instance: a restarted process fences its killed predecessor at once."""
    return f"{prefix}ledger-pricing-{instance}"


def group_id(prefix: str) -> str:
    return f"{prefix}ledger-pricing"


def run() -> int:
    settings = load_settings()
    try:
        book = load_pricebook(settings.ledger_pricebook)
    except PriceBookError as error:
        log.error("pricing cannot start: %s", error)
        return 2
    instance = settings.ledger_instance_id
    quiet_garbage_collector()
    one_malloc_arena()
    return batching.run(serve(settings, book, instance))


async def serve(settings: Settings, book: PriceBook, instance: str) -> int:
    stop = stop_on_signals()
    await create_topics(settings)
    topics = Topics.from_settings(settings)
    prefix = settings.ledger_topic_prefix
    producer = AIOKafkaProducer(
        **connection(settings),
        acks="all",
        enable_idempotence=True,
        transactional_id=transactional_id(prefix, instance),
        transaction_timeout_ms=TRANSACTION_TIMEOUT_MS,
        linger_ms=5,
        max_batch_size=MAX_BATCH_BYTES,
    )
    consumer = make_consumer(settings, group_id=group_id(prefix))
    guard = RebalanceGuard(
        f"consuming {topics.usage} as group {group_id(prefix)}, transactional id "
        f"{transactional_id(prefix, instance)}, price book {settings.ledger_pricebook} "
        f"(versions {', '.join(v.version for v in book.versions)}), "
        f"dedup window {settings.ledger_dedup_window_days} days"
    )
    consumer.subscribe([topics.usage], listener=guard)
    await producer.start()
    try:
        await consumer.start()
        try:
            pricing = Pricing(
                consumer, producer, book, topics, group_id(prefix), guard, settings.dedup_window
            )
            await pricing.run(stop)
        finally:
            await consumer.stop()
    finally:
        await producer.stop()
    log.info("pricing stopped cleanly")
    return 0


class Pricing:
    """The consume-price-produce loop around the pure `price_batch`."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        book: PriceBook,
        topics: Topics,
        group: str,
        guard: RebalanceGuard,
        window: timedelta,
    ) -> None:
        self.consumer = consumer
        self.producer = producer
        self.book = book
        self.topics = topics
        self.group = group
        self.guard = guard
        self.positions: dict[TopicPartition, int] = {}
        # LEDGER_DEDUP_WINDOW_DAYS; usage older than this when it reached Kafka is rejected.
        self.window = window
        self.throughput = Throughput("pricing", "events", time.monotonic(), ("rejections",))
        self.priced = 0  # since start

    async def run(self, stop: asyncio.Event) -> None:
        ledger_partitions = len(await self.producer.partitions_for(self.topics.ledger))
        dlq_partitions = len(await self.producer.partitions_for(self.topics.dlq))
        while not stop.is_set():
            generation = self.guard.generation
            fetched = await self.consumer.getmany(
                timeout_ms=POLL_TIMEOUT_MS, max_records=BATCH_RECORDS
            )
            if fetched:
                async with self.guard.lock:
                    if self.guard.generation != generation:
                        log.info(
                            "rebalance during fetch: %d records left to be re-read",
                            sum(map(len, fetched.values())),
                        )
                        self.rewind(fetched)
                        continue
                    records = [r for batch in fetched.values() for r in batch]
                    started = time.monotonic()
                    priced = price_batch(
                        records,
                        self.book,
                        datetime.now(UTC),
                        ledger_partitions=ledger_partitions,
                        dlq_partitions=dlq_partitions,
                        window=self.window,
                    )
                    priced_at = time.monotonic()
                    await commit_batch(self.producer, self.topics, self.group, priced)
                    committed_at = time.monotonic()
                self.after_commit(priced)
                self.throughput.add(priced.size, rejections=len(priced.rejections))
                # pricing: this process's CPU; committing: waiting for the broker
                self.throughput.spend(
                    pricing=priced_at - started, committing=committed_at - priced_at
                )
                self.priced += priced.size
            self.report()

    def rewind(self, fetched: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        """Puts the partitions still assigned back at the first record of a discarded fetch.

        getmany returns only records that follow the current positions; when a rebalance
        completed meanwhile, the positions are already past them, and without this seek
        they would never be priced. No call to the coordinator: the revoke callback holds
        `guard.lock` waiting for this batch, and the rebalance waits for the callback.
        """
        assigned = self.consumer.assignment()
        for tp, records in fetched.items():
            if tp in assigned and records:
                self.consumer.seek(tp, records[0].offset)

    def after_commit(self, priced: PricedBatch) -> None:
        for (topic, partition), offset in priced.next_offsets.items():
            self.positions[TopicPartition(topic, partition)] = offset
        for rejection in priced.rejections:
            source = rejection.source
            log.warning(
                "rejected %s/%d@%d as %s: %s",
                source.topic,
                source.partition,
                source.offset,
                rejection.error,
                rejection.detail,
            )

    def report(self) -> None:
        now = time.monotonic()
        if self.throughput.due(now):
            lag = self.lag()
            log.info(
                self.throughput.line(
                    now,
                    f"priced since start {self.priced:,}",
                    f"lag {'unknown' if lag is None else f'{lag:,}'}",
                )
            )
            self.throughput.reset(now)

    def lag(self) -> int | None:
        """Committed records not yet priced, over the partitions this instance holds."""
        total = 0
        for tp in self.consumer.assignment():
            stable = self.consumer.last_stable_offset(tp)
            position = self.positions.get(tp)
            if stable is None or position is None:
                return None
            total += max(stable - position, 0)
        return total
