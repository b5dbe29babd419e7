"""Replays ledger.v1 into a projection schema with the projector's own apply surface
(services/projector/apply.py: prepare, then apply), so a replay decides every entry as the
live projector did, rejections included.

Shared by the audit (into a fresh shadow schema, from offset 0 up to the live cut) and the
rebuild (into a work schema, from the offsets it already applied, so an interrupted rebuild
resumes). Progress lives in the schema's own applied_offsets, written by apply in the same
transaction as the rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import asyncpg

from schemas.entry_signing import VerifyKeys
from services.audit import queries
from services.audit.reading import BATCH_RECORDS, LogReader
from services.projector import ApplyResult, Batch, apply, prepare

# Prepared batches waiting for PostgreSQL: enough to ride out an uneven fetch, and a bound
# on memory (a batch of 20,000 debits holds about 46 MB).
PREPARED_AHEAD = 2
# Only the audit's shadow and the rebuild's work schema are written here, and both are
# rebuilt from the log if lost: their commits need not wait for the WAL flush. A commit
# that is lost in a crash loses rows and their applied_offsets together (one transaction),
# so a resumed rebuild re-reads exactly those. Never used for the live projection.
WORK_SCHEMA_COMMIT = "SET synchronous_commit = off"


@dataclass
class ReplayStats:
    entries: int = 0  # messages read from the log and applied (duplicates included)
    batches: int = 0
    applied: int = 0
    duplicates: int = 0
    conflicts: int = 0
    rejected: int = 0

    def add(self, records: int, result: ApplyResult) -> None:
        self.entries += records
        self.batches += 1
        self.applied += result.applied
        self.duplicates += result.duplicates
        self.conflicts += result.conflicts
        self.rejected += result.rejected


async def applied_offsets(conn: asyncpg.Connection, topic: str) -> dict[int, int]:
    """The next offset per partition already applied to the connection's schema."""
    rows = await conn.fetch(queries.APPLIED_OFFSETS, topic)
    return {r["partition"]: r["next_offset"] for r in rows}


async def replay(
    pool: asyncpg.Pool,
    reader: LogReader,
    topic: str,
    targets: Mapping[int, int],
    on_batch: Callable[[int], None],
    keys: VerifyKeys,
    batch_records: int = BATCH_RECORDS,
) -> ReplayStats:
    """Applies ledger.v1 from the schema's applied offsets up to `targets` (exclusive),
    authenticating grants and adjustments with `keys` as the live projector does.

    Fetching, parsing (in a worker thread) and PostgreSQL's write of the batch before run
    at the same time, as in the live projector; the queue bounds the batches held at once.
    """
    async with pool.acquire() as conn:
        starts = await applied_offsets(conn, topic)
    stats = ReplayStats()
    ready: asyncio.Queue[Batch | None] = asyncio.Queue(maxsize=PREPARED_AHEAD)
    records = reader.read_range(topic, starts, targets, batch_records)
    feeder = asyncio.create_task(_feed(records, ready, keys))
    try:
        while (batch := await _take(ready, feeder)) is not None:
            async with pool.acquire() as conn:
                await conn.execute(WORK_SCHEMA_COMMIT)
                result = await apply(conn, topic, batch)
            stats.add(len(batch.records), result)
            on_batch(len(batch.records))
    finally:
        feeder.cancel()
        with suppress(asyncio.CancelledError):
            await feeder
    return stats


async def _feed(
    batches: AsyncIterator[list[Any]], ready: asyncio.Queue[Batch | None], keys: VerifyKeys
) -> None:
    """Puts prepared batches, then None; on an error too, so the consumer wakes up."""
    try:
        async for records in batches:
            await ready.put(await asyncio.to_thread(prepare, records, keys))
    except Exception:
        await ready.put(None)
        raise
    await ready.put(None)


async def _take(ready: asyncio.Queue[Batch | None], feeder: asyncio.Task[None]) -> Batch | None:
    batch = await ready.get()
    if batch is None:
        await feeder  # a fetch or parse error is raised here rather than lost
    return batch
