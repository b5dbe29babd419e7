"""Reads a topic's partitions from given offsets up to given offsets: a bounded copy.

Manual assignment, no consumer group and read_committed, so aborted transactions are never
seen and nothing is committed: an audit or a rebuild leaves the services' groups alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from services.common import kafka
from services.common.settings import Settings

FETCH_TIMEOUT_MS = 500


def bounded_reader(settings: Settings) -> AIOKafkaConsumer:
    return kafka.consumer(settings, group_id=None)


async def end_offsets(reader: AIOKafkaConsumer, topic: str) -> dict[int, int]:
    """Each partition's end (the last stable offset under read_committed) right now."""
    await reader.topics()  # refreshes the metadata so new partitions are known
    tps = [TopicPartition(topic, p) for p in sorted(reader.partitions_for_topic(topic) or ())]
    if not tps:
        return {}
    ends: dict[TopicPartition, int] = await reader.end_offsets(tps)
    return {tp.partition: end for tp, end in ends.items()}


async def read_range(
    reader: AIOKafkaConsumer,
    topic: str,
    starts: Mapping[int, int],
    targets: Mapping[int, int],
    max_records: int,
) -> AsyncIterator[list[Any]]:
    """Yields batches of records with starts[p] <= offset < targets[p], in offset order per
    partition; stops once every partition's position reached its target."""
    remaining = {
        TopicPartition(topic, p): end for p, end in targets.items() if starts.get(p, 0) < end
    }
    if not remaining:
        return
    reader.assign(list(remaining))
    for tp in remaining:
        reader.seek(tp, starts.get(tp.partition, 0))
    while remaining:
        fetched = await reader.getmany(
            *remaining, timeout_ms=FETCH_TIMEOUT_MS, max_records=max_records
        )
        batch = [r for tp, rs in fetched.items() for r in rs if r.offset < remaining.get(tp, 0)]
        for tp in list(remaining):
            if await reader.position(tp) >= remaining[tp]:
                del remaining[tp]
        if batch:
            yield batch
