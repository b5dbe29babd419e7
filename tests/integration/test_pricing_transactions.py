"""send_batch inside a transaction: an aborted batch is invisible to read_committed readers."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaProducer

from services.common.kafka import partition_for
from services.common.settings import Settings
from services.common.topics import Topics
from services.pricing.transactions import send_partition
from tests.integration.pricing_harness import read_committed

pytestmark = pytest.mark.integration


async def test_aborted_send_batch_is_invisible_committed_one_is_seen(
    isolated_settings: Settings,
) -> None:
    topic = Topics.from_settings(isolated_settings).ledger
    key = b"acct-txn"
    partition = partition_for(key, isolated_settings.ledger_partitions)
    producer = AIOKafkaProducer(
        bootstrap_servers=isolated_settings.kafka_bootstrap_servers,
        transactional_id=f"test-pricing-{uuid.uuid4().hex}",
        enable_idempotence=True,
    )
    await producer.start()
    try:
        await producer.begin_transaction()
        await send_partition(producer, topic, partition, [(key, b"aborted")] * 1000)
        await producer.abort_transaction()
        await producer.begin_transaction()
        await send_partition(producer, topic, partition, [(key, b"committed")] * 3)
        await producer.commit_transaction()
    finally:
        await producer.stop()
    seen = await read_committed(isolated_settings, topic, 3)
    assert [(r.partition, r.key, r.value) for r in seen] == [(partition, key, b"committed")] * 3
