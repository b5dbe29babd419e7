"""SIGKILL pricing in the middle of a stream, restart it: exactly one debit per usage event."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.common.kafka import partition_for
from services.common.settings import Settings
from services.common.topics import Topics
from services.pricing.transactions import send_partition
from tests.factories import usage_fields as usage
from tests.integration.pricing_harness import debits, read_committed
from tests.processes import ServiceProcess

pytestmark = pytest.mark.integration

EVENTS = 20_000
CHUNK = 250
ACCOUNTS = 50


async def produce_stream(settings: Settings, event_ids: list[str], started: asyncio.Event) -> None:
    """Publishes the events in chunks, so the kill lands while usage keeps arriving."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        topic = Topics.from_settings(settings).usage
        for start in range(0, len(event_ids), CHUNK):
            by_partition: dict[int, list[tuple[bytes | None, bytes]]] = {}
            for i, event_id in enumerate(event_ids[start : start + CHUNK], start):
                account = f"acct-{i % ACCOUNTS}"
                value = json.dumps(usage(event_id=event_id, account_id=account)).encode()
                key = account.encode()
                partition = partition_for(key, settings.ledger_partitions)
                by_partition.setdefault(partition, []).append((key, value))
            for partition, messages in by_partition.items():
                await send_partition(producer, topic, partition, messages)
            started.set()
            await asyncio.sleep(0.1)
    finally:
        await producer.stop()


async def committed_debits(settings: Settings) -> int:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, isolation_level="read_committed"
    )
    await consumer.start()
    try:
        topic = Topics.from_settings(settings).ledger
        partitions = [TopicPartition(topic, p) for p in range(settings.ledger_partitions)]
        # The last stable offsets count commit markers too: a lower bound of progress is enough.
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


async def wait_for_debits(settings: Settings, at_least: int) -> None:
    for _ in range(2000):
        if await committed_debits(settings) >= at_least:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"fewer than {at_least} debits committed")


async def test_sigkill_mid_stream_then_restart_prices_each_event_exactly_once(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    event_ids = [str(uuid.uuid4()) for _ in range(EVENTS)]
    started = asyncio.Event()
    producing = asyncio.create_task(produce_stream(isolated_settings, event_ids, started))
    service = ServiceProcess("pricing", isolated_settings, tmp_path)
    await asyncio.to_thread(service.start)
    try:
        await started.wait()
        await wait_for_debits(isolated_settings, EVENTS // 10)
        service.kill()
        assert not producing.done(), "the stream ended before the kill; raise EVENTS"
        await asyncio.to_thread(service.start)
        await producing
        ledger = Topics.from_settings(isolated_settings).ledger
        got = debits(await read_committed(isolated_settings, ledger, EVENTS))
    finally:
        producing.cancel()
        assert service.stop() == 0, service.log()
    counts = Counter(d.usage_event_id for d in got)
    assert set(counts) == set(event_ids)
    assert [e for e, n in counts.items() if n > 1] == []
    assert len(got) == EVENTS
