"""Replays ledger.v1 into a projection schema with the projector's own apply code.

Shared by the audit (into a fresh shadow schema, from offset 0 up to the live cut) and the
rebuild (into a work schema, from the offsets it already applied, so an interrupted rebuild
resumes). Progress lives in the schema's own applied_offsets, written by apply_prepared in
the same transaction as the rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import asyncpg

from services.audit import queries
from services.audit.reading import LogReader
from services.projector.columns import PreparedBatch, prepare
from services.projector.ledger import read_message
from services.projector.store import ApplyResult, apply_prepared

BATCH_RECORDS = 10_000


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
    batch_records: int = BATCH_RECORDS,
) -> ReplayStats:
    """Applies ledger.v1 from the schema's applied offsets up to `targets` (exclusive).

    The next batch is fetched and prepared while PostgreSQL writes the current one.
    """
    async with pool.acquire() as conn:
        starts = await applied_offsets(conn, topic)
    stats = ReplayStats()
    batches = _prepared(reader.read_range(topic, starts, targets, batch_records))
    upcoming = asyncio.create_task(_next(batches))
    try:
        while (batch := await upcoming) is not None:
            upcoming = asyncio.create_task(_next(batches))
            async with pool.acquire() as conn:
                result = await apply_prepared(conn, topic, batch)
            stats.add(len(batch.records), result)
            on_batch(len(batch.records))
    finally:
        upcoming.cancel()
        with suppress(asyncio.CancelledError, StopAsyncIteration):
            await upcoming
    return stats


async def _prepared(batches: AsyncIterator[list[Any]]) -> AsyncIterator[PreparedBatch]:
    async for records in batches:
        yield prepare([read_message(r.value, r.partition, r.offset) for r in records])


async def _next(batches: AsyncIterator[PreparedBatch]) -> PreparedBatch | None:
    return await anext(batches, None)
