"""Shared by the pricing tests: usage.v1 written under one key, and topics read back the way
the projector reads them (aiokafka consumers with read_committed)."""

from __future__ import annotations

import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord, RecordMetadata

from schemas.events import CreditsDebited
from services.common.settings import Settings
from services.common.topics import Topics

# How long to wait for results before failing; a safety net, not a speed requirement.
PATIENCE_S = 120.0


async def publish(
    settings: Settings, values: list[bytes | None], key: bytes
) -> list[RecordMetadata]:
    """Sends in order under one key, so the records share a partition and offsets ascend."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        topic = Topics.from_settings(settings).usage
        return [await producer.send_and_wait(topic, value, key=key) for value in values]
    finally:
        await producer.stop()


async def read_committed(settings: Settings, topic: str, expected: int) -> list[ConsumerRecord]:
    """Every committed record of `topic`: waits for `expected`, then reads on to the end."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        isolation_level="read_committed",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.ledger_partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + PATIENCE_S
        while len(records) < expected and time.monotonic() < deadline:
            fetched = await consumer.getmany(timeout_ms=500, max_records=50_000)
            records += [r for batch in fetched.values() for r in batch]
        ends = await consumer.end_offsets(partitions)
        while await behind(consumer, ends) and time.monotonic() < deadline:
            fetched = await consumer.getmany(timeout_ms=500, max_records=50_000)
            records += [r for batch in fetched.values() for r in batch]
        return records
    finally:
        await consumer.stop()


async def behind(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    return any([await consumer.position(tp) < end for tp, end in ends.items()])


def debits(records: list[ConsumerRecord]) -> list[CreditsDebited]:
    return [CreditsDebited.model_validate_json(r.value) for r in records]
