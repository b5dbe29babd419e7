"""Topic names (with the optional prefix) and their creation."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiokafka.admin import NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from services.common import kafka
from services.common.settings import Settings

log = logging.getLogger(__name__)

# Kafka is the source of truth: the ledger's topics are never trimmed by time or size.
TOPIC_CONFIG = {"retention.ms": "-1", "retention.bytes": "-1"}


@dataclass(frozen=True)
class Topics:
    usage: str
    ledger: str
    dlq: str
    alerts: str
    holds: str

    @classmethod
    def from_prefix(cls, prefix: str) -> Topics:
        return cls(
            usage=f"{prefix}usage.v1",
            ledger=f"{prefix}ledger.v1",
            dlq=f"{prefix}usage.dlq.v1",
            alerts=f"{prefix}alerts.v1",
            holds=f"{prefix}holds.v1",
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Topics:
        return cls.from_prefix(settings.ledger_topic_prefix)

    def all(self) -> tuple[str, ...]:
        return (self.usage, self.ledger, self.dlq, self.alerts, self.holds)


def topic_config(settings: Settings) -> dict[str, str]:
    """With replicas, an acknowledged write is on two brokers at least (producers send with
    acks=all), so one broker may fail without losing an event or stopping the writes."""
    min_insync = min(2, settings.ledger_replication_factor)
    return {**TOPIC_CONFIG, "min.insync.replicas": str(min_insync)}


async def create_topics(settings: Settings) -> list[str]:
    """Creates the missing topics; returns the names it created (idempotent)."""
    admin = kafka.admin(settings)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in Topics.from_settings(settings).all() if t not in existing]
        created = []
        replicas, config = settings.ledger_replication_factor, topic_config(settings)
        for name in missing:
            topic = NewTopic(name, settings.ledger_partitions, replicas, topic_configs=config)
            try:
                await admin.create_topics([topic])
                created.append(name)
            except TopicAlreadyExistsError:
                log.debug("topic %s was created concurrently", name)
        return created
    finally:
        await admin.close()
