"""One priced batch, its output and its consumed offsets, as one Kafka transaction."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaProducer, TopicPartition

from services.common.topics import Topics
from services.pricing.batch import Message, PricedBatch

log = logging.getLogger("services.pricing")


async def commit_batch(
    producer: AIOKafkaProducer, topics: Topics, group: str, priced: PricedBatch
) -> None:
    """Commits debits, rejections and offsets together; aborts and re-raises on any error."""
    offsets = {TopicPartition(t, p): offset for (t, p), offset in priced.next_offsets.items()}
    outputs = ((topics.ledger, priced.ledger), (topics.dlq, priced.dlq))
    await producer.begin_transaction()
    try:
        await asyncio.gather(
            *(
                send_partition(producer, topic, partition, messages)
                for topic, by_partition in outputs
                for partition, messages in by_partition.items()
            )
        )
        await producer.send_offsets_to_transaction(offsets, group)
        await producer.commit_transaction()
    except BaseException:
        await abort(producer)
        raise


async def send_partition(
    producer: AIOKafkaProducer, topic: str, partition: int, messages: list[Message]
) -> None:
    """Sends messages in order as few record batches; returns once the broker has them all."""
    deliveries = []
    batch = producer.create_batch()
    for key, value in messages:
        if batch.append(key=key, value=value, timestamp=None) is None:
            deliveries.append(await producer.send_batch(batch, topic, partition=partition))
            batch = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:
                raise ValueError(f"a message of {len(value)} bytes does not fit in a batch")
    deliveries.append(await producer.send_batch(batch, topic, partition=partition))
    await asyncio.gather(*deliveries)


async def abort(producer: AIOKafkaProducer) -> None:
    try:
        await producer.abort_transaction()
    except Exception:
        # The original error is the one worth raising; this one is logged beside it.
        log.exception("aborting the transaction failed too")
