"""Proof that the parts are real: Kafka transactions, topic settings and PostgreSQL."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from services.common.settings import Settings
from services.common.topics import Topics

pytestmark = pytest.mark.integration


async def test_aborted_transaction_is_invisible_to_read_committed(settings: Settings) -> None:
    topic = Topics.from_settings(settings).ledger
    key = f"proof-{uuid.uuid4().hex}".encode()
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        transactional_id=f"proof-{uuid.uuid4().hex}",
        enable_idempotence=True,
    )
    await producer.start()
    try:
        async with producer.transaction():
            first = await producer.send_and_wait(topic, b"committed-1", key=key)
        await producer.begin_transaction()
        await producer.send_and_wait(topic, b"aborted", key=key)
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send_and_wait(topic, b"committed-2", key=key)
    finally:
        await producer.stop()

    seen = await read_partition(
        settings, topic, first.partition, first.offset, key, "read_committed"
    )
    assert seen == [b"committed-1", b"committed-2"]
    raw = await read_partition(
        settings, topic, first.partition, first.offset, key, "read_uncommitted"
    )
    assert b"aborted" in raw


async def read_partition(
    settings: Settings, topic: str, partition: int, start: int, key: bytes, isolation: str
) -> list[bytes]:
    from aiokafka import TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        isolation_level=isolation,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, start)
        end = (await consumer.end_offsets([tp]))[tp]
        values: list[bytes] = []
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=2000)
            values += [m.value for m in batch.get(tp, []) if m.key == key and m.value is not None]
            if not batch:
                break
        return values
    finally:
        await consumer.stop()


async def test_topics_have_configured_partitions_and_infinite_retention(settings: Settings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        names = Topics.from_settings(settings).all()
        described = await admin.describe_topics(list(names))
        assert {t["topic"]: len(t["partitions"]) for t in described} == dict.fromkeys(names, 6)
        resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        for response in await admin.describe_configs(resources):
            for resource in response.resources:
                configs = {entry[0]: entry[1] for entry in resource[4]}
                assert configs["retention.ms"] == "-1", resource[3]
    finally:
        await admin.close()


async def test_postgres_round_trip(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("CREATE TABLE proof (id bigint PRIMARY KEY, note text)")
        await conn.executemany("INSERT INTO proof VALUES ($1, $2)", [(1, "one"), (2, "two")])
        rows = await conn.fetch("SELECT id, note FROM proof ORDER BY id")
        assert [(r["id"], r["note"]) for r in rows] == [(1, "one"), (2, "two")]
        assert int(await conn.fetchval("SHOW server_version_num")) >= 150000
    finally:
        await conn.close()
