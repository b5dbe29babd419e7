"""What Kafka tells the overview: how far pricing and the projector are behind their input
topics, and the latest usage events pricing rejected (the tail of usage.dlq.v1).

The overview reads this on every refresh, so it opens two light clients (no consumer group
is joined, nothing is committed), reads offsets and a few records near the ends of the
topics, and closes them again, within a short timeout.

Pricing writes in Kafka transactions, and each transaction's commit marker takes an offset
of its own: a stage that has read everything still sits an offset or so before the end. So
where a stage is only a few offsets behind, the records in between are read and counted,
and a caught-up stage shows 0.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
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
COUNTED_GAP = 100  # a stage at most this many offsets behind on a partition: count records
FETCHES = 10  # at most, to read those records

Offsets = Mapping[int, int]  # partition -> offset
Records = dict[TopicPartition, list[bytes | None]]


@dataclass(frozen=True)
class Span:
    """A topic's first and next offset per partition (the end is the last stable offset)."""

    begin: Offsets
    end: Offsets

    def messages(self) -> int:
        """Offsets in the topic, commit markers included."""
        return sum(max(0, end - self.begin.get(p, 0)) for p, end in self.end.items())

    def start(self, done: Offsets, partition: int) -> int:
        """Where a reader at `done` goes on: the beginning of a partition it never read, as
        the services' consumers do."""
        return max(done.get(partition, self.begin.get(partition, 0)), 0)


def behind(span: Span, done: Offsets, counted: Offsets) -> int:
    """What a reader at `done` has still to read: the records counted between it and the
    end where they were read (`counted`), the offsets elsewhere."""
    return sum(
        counted[p] if p in counted else max(0, end - span.start(done, p))
        for p, end in span.end.items()
    )


@dataclass(frozen=True)
class KafkaFigures:
    pricing_behind: int
    projector_behind: int
    dlq_offsets: int
    rejections: list[UsageRejected]  # the newest on usage.dlq.v1, newest first
    every_rejection: bool  # the whole topic was read: `rejections` are all there are

    def rejected_usage(self) -> int:
        """The usage events pricing rejected: exact when the whole of usage.dlq.v1 was read,
        else its offsets, an upper bound (each commit marker takes one too)."""
        return len(self.rejections) if self.every_rejection else self.dlq_offsets


async def read_figures(settings: Settings, projector_done: Offsets) -> KafkaFigures:
    """`projector_done`: the next ledger.v1 offset the projector applies, per partition.

    Raises TimeoutError or a Kafka error when the broker does not answer in time."""
    topics = Topics.from_settings(settings)
    async with asyncio.timeout(KAFKA_TIMEOUT), _clients(settings) as (consumer, admin):
        usage, ledger, dlq = [
            await _span(consumer, admin, t) for t in (topics.usage, topics.ledger, topics.dlq)
        ]
        pricing = pricing_group(settings.ledger_topic_prefix)
        pricing_done = await _committed(admin, pricing, topics.usage)
        starts = {
            **_gaps(topics.usage, usage, pricing_done),
            **_gaps(topics.ledger, ledger, projector_done),
            **_tail(topics.dlq, dlq),
        }
        spans = {topics.usage: usage, topics.ledger: ledger, topics.dlq: dlq}
        ends = {tp: spans[tp.topic].end[tp.partition] for tp in starts}
        records, complete = await _read_to_end(consumer, starts, ends)

    def counted(topic: str) -> dict[int, int]:
        return {tp.partition: len(records[tp]) for tp in complete if tp.topic == topic}

    dlq_read = [tp for tp in starts if tp.topic == topics.dlq]
    rejections = [r for tp in dlq_read for r in map(_rejection, records[tp]) if r is not None]
    return KafkaFigures(
        pricing_behind=behind(usage, pricing_done, counted(topics.usage)),
        projector_behind=behind(ledger, projector_done, counted(topics.ledger)),
        dlq_offsets=dlq.messages(),
        rejections=sorted(rejections, key=lambda r: r.rejected_at, reverse=True),
        every_rejection=all(
            tp in complete and starts[tp] == dlq.begin.get(tp.partition, 0) for tp in dlq_read
        ),
    )


@asynccontextmanager
async def _clients(
    settings: Settings,
) -> AsyncIterator[tuple[AIOKafkaConsumer, AIOKafkaAdminClient]]:
    consumer = kafka.consumer(settings, group_id=None)
    admin = kafka.admin(settings)
    try:
        await consumer.start()
        await admin.start()
        yield consumer, admin
    finally:
        await admin.close()
        await consumer.stop()


async def _span(consumer: AIOKafkaConsumer, admin: AIOKafkaAdminClient, topic: str) -> Span:
    described = await admin.describe_topics([topic])
    partitions = sorted(p["partition"] for t in described for p in t.get("partitions", []))
    tps = [TopicPartition(topic, p) for p in partitions]
    begin = await consumer.beginning_offsets(tps)
    end = await consumer.end_offsets(tps)
    return Span(
        begin={tp.partition: offset for tp, offset in begin.items()},
        end={tp.partition: offset for tp, offset in end.items()},
    )


async def _committed(admin: AIOKafkaAdminClient, group: str, topic: str) -> dict[int, int]:
    committed = await admin.list_consumer_group_offsets(group)
    return {
        tp.partition: meta.offset
        for tp, meta in committed.items()
        if tp.topic == topic and meta.offset >= 0
    }


def _gaps(topic: str, span: Span, done: Offsets) -> dict[TopicPartition, int]:
    """Where to start reading the records a reader at `done` has not read, on the
    partitions where they are few."""
    starts = {p: span.start(done, p) for p in span.end}
    return {
        TopicPartition(topic, p): start
        for p, start in starts.items()
        if 0 < span.end[p] - start <= COUNTED_GAP
    }


def _tail(topic: str, span: Span) -> dict[TopicPartition, int]:
    return {
        TopicPartition(topic, p): max(span.begin.get(p, 0), end - TAIL)
        for p, end in span.end.items()
        if end > span.begin.get(p, 0)
    }


async def _read_to_end(
    consumer: AIOKafkaConsumer,
    starts: Mapping[TopicPartition, int],
    ends: Mapping[TopicPartition, int],
) -> tuple[Records, set[TopicPartition]]:
    """The records from each start to its end, and the partitions read up to the end (a
    position moves past commit markers, where no record is)."""
    records: Records = {tp: [] for tp in starts}
    consumer.assign(list(starts))
    for tp, start in starts.items():
        consumer.seek(tp, start)
    for _ in range(FETCHES):
        if all([await consumer.position(tp) >= ends[tp] for tp in starts]):
            break
        batches = await consumer.getmany(*starts, timeout_ms=200)
        for tp, batch in batches.items():
            records[tp] += [m.value for m in batch if m.offset < ends[tp]]
    complete = {tp for tp in starts if await consumer.position(tp) >= ends[tp]}
    return records, complete


def _rejection(raw: bytes | None) -> UsageRejected | None:
    """A usage.dlq.v1 record; anything else (there should be nothing else) is left out."""
    try:
        return UsageRejected.model_validate_json(raw or b"")
    except ValidationError:
        return None
