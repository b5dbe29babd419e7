"""What Kafka tells the overview: how far pricing and the projector are behind their input
topics, and the latest usage events pricing rejected (the tail of usage.dlq.v1).

The overview reads this on every refresh, so it opens two light clients (no consumer group
is joined, nothing is committed), reads only offsets and a few records at the end of the
dead-letter topic, and closes them again, within a short timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import ValidationError

from schemas.events import UsageRejected
from services.common import kafka
from services.common.settings import Settings
from services.common.topics import Topics
from services.pricing.service import group_id as pricing_group

KAFKA_TIMEOUT = 5.0  # seconds; the overview answers without Kafka's figures after that
TAIL = 10  # records read at the end of each usage.dlq.v1 partition
FETCHES = 10  # at most, to read them


@dataclass(frozen=True)
class Span:
    """A topic's first and next offset per partition (the end is the last stable offset)."""

    begin: Mapping[int, int]
    end: Mapping[int, int]

    def messages(self) -> int:
        """Offsets in the topic; a transaction's commit marker takes one too."""
        return sum(max(0, self.end[p] - self.begin.get(p, 0)) for p in self.end)

    def behind(self, done: Mapping[int, int]) -> int:
        """Offsets not yet read by a reader at `done` (which starts a partition it never
        read at the beginning, as the services' consumers do)."""
        return sum(max(0, end - done.get(p, self.begin.get(p, 0))) for p, end in self.end.items())


@dataclass(frozen=True)
class PipelineOffsets:
    usage: Span
    ledger: Span
    dlq: Span
    pricing_read: Mapping[int, int]  # the pricing group's committed offsets on usage.v1
    rejections: list[UsageRejected]  # the newest on usage.dlq.v1, newest first
    every_rejection: bool  # the tail was the whole topic: `rejections` are all there are


async def read_offsets(settings: Settings) -> PipelineOffsets:
    """Raises TimeoutError or a Kafka error when the broker does not answer in time."""
    topics = Topics.from_settings(settings)
    async with asyncio.timeout(KAFKA_TIMEOUT):
        consumer = kafka.consumer(settings, group_id=None)
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
        try:
            await consumer.start()
            await admin.start()
            usage, ledger, dlq = [await _span(consumer, admin, t) for t in topics.all()]
            committed = await admin.list_consumer_group_offsets(
                pricing_group(settings.ledger_topic_prefix)
            )
            rejections, whole = await _tail(consumer, topics.dlq, dlq)
        finally:
            await admin.close()
            await consumer.stop()
    pricing_read = {
        tp.partition: meta.offset
        for tp, meta in committed.items()
        if tp.topic == topics.usage and meta.offset >= 0
    }
    return PipelineOffsets(usage, ledger, dlq, pricing_read, rejections, whole)


async def _span(consumer: AIOKafkaConsumer, admin: AIOKafkaAdminClient, topic: str) -> Span:
    partitions = [TopicPartition(topic, p) for p in await _partitions(admin, topic)]
    begin = await consumer.beginning_offsets(partitions)
    end = await consumer.end_offsets(partitions)
    return Span(
        begin={tp.partition: offset for tp, offset in begin.items()},
        end={tp.partition: offset for tp, offset in end.items()},
    )


async def _partitions(admin: AIOKafkaAdminClient, topic: str) -> list[int]:
    described = await admin.describe_topics([topic])
    return sorted(p["partition"] for t in described for p in t.get("partitions", []))


async def _tail(
    consumer: AIOKafkaConsumer, topic: str, span: Span
) -> tuple[list[UsageRejected], bool]:
    """The last TAIL records of each partition, newest first (records that are not
    usage.rejected events, none should be, are left out), and whether every record of
    the topic was read."""
    starts = {
        TopicPartition(topic, p): max(span.begin.get(p, 0), end - TAIL)
        for p, end in span.end.items()
        if end > span.begin.get(p, 0)
    }
    consumer.assign(list(starts))
    for tp, start in starts.items():
        consumer.seek(tp, start)
    found: list[UsageRejected] = []
    whole = all(start == span.begin.get(tp.partition, 0) for tp, start in starts.items())
    # The end offset may be a commit marker no record sits at: stop once each position
    # has reached its end (positions move past markers).
    for _ in range(FETCHES):
        if not await _unread(consumer, span, starts):
            break
        batches = await consumer.getmany(*starts, timeout_ms=200)
        for records in batches.values():
            found += [r for r in (_rejection(m.value) for m in records) if r is not None]
    # Records not read in time leave the count open.
    whole = whole and not await _unread(consumer, span, starts)
    return sorted(found, key=lambda r: r.rejected_at, reverse=True), whole


async def _unread(
    consumer: AIOKafkaConsumer, span: Span, partitions: Iterable[TopicPartition]
) -> list[TopicPartition]:
    return [tp for tp in partitions if await consumer.position(tp) < span.end[tp.partition]]


def _rejection(raw: bytes | None) -> UsageRejected | None:
    try:
        return UsageRejected.model_validate_json(raw or b"")
    except ValidationError:
        return None
