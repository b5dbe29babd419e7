"""Kafka clients as the ledger uses them: keyed by account, batched per partition.

FastStream has no transactions and its `publish_batch` ignores keys, so the hot paths use
aiokafka directly (docs/architecture.md, Why aiokafka).
"""

from __future__ import annotations

from functools import lru_cache

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import murmur2

from services.common.settings import Settings

# Large batches and lz4 compression: ledger messages are small JSON and compress well.
PRODUCER_TUNING = {"linger_ms": 5, "max_batch_size": 256 * 1024, "compression_type": "lz4"}


def producer(settings: Settings, transactional_id: str | None = None) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_idempotence=True,
        acks="all",
        transactional_id=transactional_id,
        **PRODUCER_TUNING,
    )


def consumer(settings: Settings, *topics: str, group_id: str | None) -> AIOKafkaConsumer:
    """A consumer that reads only committed records and never commits on its own."""
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=group_id,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=16 * 1024 * 1024,
    )


def account_key(account_id: str) -> bytes:
    return account_id.encode()


@lru_cache(maxsize=1 << 16)
def partition_for(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner (murmur2 of the key): whoever produces an account's
    messages, with batches built per partition or not, they land on the same partition."""
    hashed: int = murmur2(key)
    return (hashed & 0x7FFFFFFF) % partitions
