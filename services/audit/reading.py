"""Reads a topic's partitions from given offsets up to given offsets: a bounded copy.

Manual assignment, no consumer group and read_committed, so aborted transactions are never
seen and nothing is committed: an audit or a rebuild leaves the services' groups alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any

from aiokafka import TopicPartition

from services.common import kafka
from services.common.settings import Settings

# The broker answers a replay's fetches at once but at the log's end, where only a
# transaction's commit marker may be left to read: getmany returns no record then, and the
# fetch still in flight there holds the next read_range's new assignment for as long as the
# broker holds that fetch. With aiokafka's defaults (500 ms both) that cost the rebuild a
# second at its end, half of it under the live tables' lock.
FETCH_TIMEOUT_MS = 50
FETCH_WAIT_MS = 10
# A replay reads a log that is all there: larger fetches than the live services' make
# larger batches, in which an account's entries are summed into fewer rows.
FETCH_BYTES = 8 * 1024 * 1024
# More records than FETCH_BYTES holds (services/common/kafka.py): a whole fetch per batch.
BATCH_RECORDS = 50_000


class LogReader:
    """`async with LogReader(settings) as log: async for batch in log.read_range(...)`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.consumer = kafka.consumer(
            settings, group_id=None, fetch_bytes=FETCH_BYTES, fetch_wait_ms=FETCH_WAIT_MS
        )

    async def __aenter__(self) -> LogReader:
        await self.consumer.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.consumer.stop()

    async def partitions(self, topic: str) -> list[int]:
        """The topic's partitions as the broker knows them now (a consumer without a
        subscription keeps no metadata of its own for the topic)."""
        admin = kafka.admin(self.settings)
        await admin.start()
        try:
            (described,) = await admin.describe_topics([topic])
        finally:
            await admin.close()
        return sorted(p["partition"] for p in described.get("partitions", ()))

    async def end_offsets(self, topic: str) -> dict[int, int]:
        """Each partition's end (the last stable offset under read_committed) right now."""
        tps = [TopicPartition(topic, p) for p in await self.partitions(topic)]
        if not tps:
            return {}
        ends: dict[TopicPartition, int] = await self.consumer.end_offsets(tps)
        return {tp.partition: end for tp, end in ends.items()}

    async def read_range(
        self,
        topic: str,
        starts: Mapping[int, int],
        targets: Mapping[int, int],
        max_records: int,
    ) -> AsyncIterator[list[Any]]:
        """Yields batches of records with starts[p] <= offset < targets[p], in offset order
        per partition; stops once every partition's position reached its target."""
        remaining = {
            TopicPartition(topic, p): end for p, end in targets.items() if starts.get(p, 0) < end
        }
        if not remaining:
            return
        reader = self.consumer
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
