"""`ledger rebuild --yes`: rebuilds the live projection from ledger.v1, resumably.

1. ledger.v1 is replayed into a work schema from the work schema's own applied_offsets (so
   a second run resumes where an interrupted one stopped) up to the current end offsets;
   meanwhile the live tables stay as they are and the API keeps answering from them.
2. One short transaction locks the live tables (the projector and the API wait), replays
   the few entries that arrived meanwhile up to the new end offsets, and puts the work
   schema's tables in place of the live ones. Then the rest of the work schema is dropped.

A batch the projector had fetched before the lock applies afterwards as duplicates: every
offset it could hold is below the end offsets taken under the lock.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
from aiokafka.errors import KafkaError

from schemas.entry_signing import EntryKeyError, VerifyKeys, read_verify_keys
from services.alerts.store import carry_alerts
from services.audit import queries
from services.audit.indexes import defer_indexes, restore_indexes
from services.audit.reading import BATCH_RECORDS, LogReader
from services.audit.replay import ReplayStats, replay
from services.common import batching
from services.common.faults import Fault, fault_point, no_fault
from services.common.progress import ProgressReport, events_per_second
from services.common.settings import Settings, load_settings
from services.common.topics import Topics, create_topics
from services.projector import LIVE_SCHEMA, open_projection

WORK_SCHEMA = "ledger_rebuild"
# Fault point for the resume test: the process kills itself after its first applied batch.
FAULT_AFTER_FIRST_BATCH = "rebuild:after_first_batch"


@dataclass
class RebuildSummary:
    entries: int = 0
    resumed_from: int = 0  # offsets the work schema already held at start
    accounts: int = 0
    elapsed: float = 0.0

    def lines(self) -> str:
        rate = events_per_second(self.entries, self.elapsed)
        resumed = f", resumed after {self.resumed_from:,} offsets" if self.resumed_from else ""
        return (
            f"rebuild: done; entries replayed {self.entries:,}{resumed}, accounts "
            f"{self.accounts:,}, elapsed {self.elapsed:.2f} s, {rate:,.0f} entries/s"
        )


def on_batch(progress: ProgressReport, after_batch: Fault) -> Callable[[int], None]:
    def advance(records: int) -> None:
        progress.advance(records)
        after_batch()

    return advance


async def swap(
    live: asyncpg.Pool,
    work: asyncpg.Pool,
    reader: LogReader,
    topic: str,
    advance: Callable[[int], None],
    keys: VerifyKeys,
    batch: int,
) -> ReplayStats:
    """Catches the work schema up under the live tables' lock and moves its tables in."""
    async with live.acquire() as conn, conn.transaction():
        await conn.execute(queries.LOCK_TIMEOUT)
        await conn.execute(queries.lock_tables(LIVE_SCHEMA))
        targets = await reader.end_offsets(topic)
        stats = await replay(work, reader, topic, targets, advance, keys, batch)
        await carry_alerts(conn, LIVE_SCHEMA, WORK_SCHEMA)
        for statement in queries.replace_tables(LIVE_SCHEMA, WORK_SCHEMA):
            await conn.execute(statement)
    return stats


async def run_rebuild(
    settings: Settings,
    keys: VerifyKeys,
    progress: ProgressReport,
    after_first_batch: Fault = no_fault,
) -> RebuildSummary:
    await create_topics(settings)
    topic = Topics.from_settings(settings).ledger
    summary = RebuildSummary()
    # Recreates the live schema when it was dropped, and migrates both to the same version.
    live = await open_projection(settings.database_url, LIVE_SCHEMA)
    work = await open_projection(settings.database_url, WORK_SCHEMA)
    advance = on_batch(progress, after_first_batch)
    batch = settings.ledger_replay_batch or BATCH_RECORDS
    try:
        async with work.acquire() as conn:
            summary.resumed_from = await conn.fetchval(queries.OFFSETS_SUM, topic)
            await defer_indexes(conn, WORK_SCHEMA)
        async with LogReader(settings) as reader:
            targets = await reader.end_offsets(topic)
            progress.total = max(sum(targets.values()) - summary.resumed_from, 0)
            first = await replay(work, reader, topic, targets, advance, keys, batch)
            async with work.acquire() as conn:
                await restore_indexes(conn)  # always before the swap, resumed or not
            last = await swap(live, work, reader, topic, advance, keys, batch)
        summary.entries = first.entries + last.entries
        async with live.acquire() as conn:
            summary.accounts = await conn.fetchval(queries.ACCOUNT_COUNT)
            await conn.execute(queries.drop_schema(WORK_SCHEMA))
    finally:
        await work.close()
        await live.close()
    summary.elapsed = progress.elapsed()
    return summary


def main(args: argparse.Namespace) -> int:
    """Exit 0 when rebuilt, 1 when it failed (run it again: it resumes), 2 without --yes."""
    if not args.yes:
        print(
            "ledger rebuild replaces the live projection with one rebuilt from ledger.v1; "
            "run `ledger rebuild --yes` to confirm",
            file=sys.stderr,
        )
        return 2
    settings = load_settings()
    try:
        keys = read_verify_keys(settings.ledger_entry_verify_keys)
    except EntryKeyError as error:
        print(f"ledger rebuild: cannot run: {error}", file=sys.stderr)
        return 2
    batching.tune_for_parsing_threads()
    try:
        with ProgressReport("rebuild", None, stream=sys.stdout) as progress:
            crash = fault_point(settings, FAULT_AFTER_FIRST_BATCH)
            summary = batching.run(run_rebuild(settings, keys, progress, crash))
    except (KafkaError, OSError, asyncpg.PostgresError) as error:
        print(f"ledger rebuild: failed: {error!r}; run it again to resume", file=sys.stderr)
        return 1
    print(summary.lines())
    return 0
