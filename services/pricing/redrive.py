"""`ledger redrive`: re-publishes the original usage of DLQ records to usage.v1.

After its cause is fixed (a model added to the price book, a larger context, a wider dedup
window), a rejected event can be billed: redrive reads usage.dlq.v1 up to its end at start,
picks the records by code and by `rejected_at`, and sends each one's `payload` to usage.v1
keyed by its account, where pricing prices it like any usage. It is billed once however
often it is redriven: the debit's entry_id comes from account and event id, so a second
copy is a duplicate the projector ignores (docs/contracts.md, Guarantees).

Each DLQ position is redriven once unless --again: the positions re-published are recorded
in PostgreSQL (redrive.redriven, services/pricing/migrations/) after Kafka acknowledged
them. A crash in between re-publishes them next time, which the entry_id makes harmless.
Kafka consumer-group offsets could not do this: a run narrowed by --error or --from/--to
must leave the records it skipped for a later run, and offsets only say how far, not which.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, get_args

import asyncpg
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from schemas.events import ACCOUNT_ID_PATTERN, RejectionCode, UsageRejected
from services.audit.reading import LogReader
from services.common import kafka
from services.common.kafka import account_key
from services.common.progress import ProgressReport
from services.common.settings import Settings, load_settings
from services.common.topics import Topics, create_topics
from services.projector.store import open_projection

CODES: tuple[str, ...] = get_args(RejectionCode)
# An invalid_json payload is not a usage event (at times not even whole), so it fails
# again; it is redriven only when named with --error.
DEFAULT_CODES = frozenset(CODES) - {"invalid_json"}
BATCH_RECORDS = 5_000
# A dry run lists this many of the records it would re-publish; the counts cover them all.
LISTED = 20

_ACCOUNT = re.compile(ACCOUNT_ID_PATTERN)
DONE = 'SELECT "partition", "offset" FROM redrive.redriven WHERE topic = $1'
RECORD = """
INSERT INTO redrive.redriven (topic, "partition", "offset", error)
SELECT $1, p, o, e FROM unnest($2::int[], $3::bigint[], $4::text[]) AS t(p, o, e)
ON CONFLICT (topic, "partition", "offset")
DO UPDATE SET times = redrive.redriven.times + 1, redriven_at = now()
"""


@dataclass(frozen=True)
class Selection:
    """Which DLQ records a run re-publishes."""

    codes: frozenset[str] = DEFAULT_CODES
    start: datetime | None = None  # rejected_at >= start
    end: datetime | None = None  # rejected_at < end
    again: bool = False

    def wants(self, rejection: UsageRejected) -> bool:
        at = rejection.rejected_at
        return (
            rejection.error in self.codes
            and (self.start is None or at >= self.start)
            and (self.end is None or at < self.end)
        )


@dataclass
class RedriveSummary:
    dry_run: bool
    read: int = 0
    redriven: Counter[str] = field(default_factory=Counter)  # per code
    already: Counter[str] = field(default_factory=Counter)  # redriven before, skipped
    unselected: int = 0
    unreadable: int = 0  # not a usage.rejected event
    listed: list[str] = field(default_factory=list)

    def lines(self) -> str:
        verb = "would re-publish" if self.dry_run else "re-published"
        total = sum(self.redriven.values())
        out = [f"redrive: {self.read:,} DLQ records read; {verb} {total:,} to usage.v1"]
        out += [f"  {code:<22} {n:>10,}" for code, n in sorted(self.redriven.items())]
        if self.already:
            skipped = sum(self.already.values())
            codes = ", ".join(f"{c} {n:,}" for c, n in sorted(self.already.items()))
            out.append(f"already redriven, skipped (--again re-publishes): {skipped:,} ({codes})")
        if self.unselected:
            out.append(f"not selected (--error, --from, --to): {self.unselected:,}")
        if self.unreadable:
            out.append(f"not a usage.rejected event, skipped: {self.unreadable:,}")
        if self.dry_run:
            out.append("dry run: nothing published, nothing recorded")
            out += [f"  would re-publish {line}" for line in self.listed]
        return "\n".join(out)


@dataclass(frozen=True)
class Redrive:
    """One DLQ record chosen for re-publishing: where it is, and what goes to usage.v1."""

    partition: int
    offset: int
    error: str
    key: bytes | None
    value: bytes


def choose(
    records: Iterable[Any],
    selection: Selection,
    done: set[tuple[int, int]],
    summary: RedriveSummary,
) -> list[Redrive]:
    """The records of one fetch to re-publish, counted in `summary`. Pure."""
    chosen = []
    for record in records:
        summary.read += 1
        try:
            rejection = UsageRejected.model_validate_json(record.value or b"")
        except ValidationError:
            summary.unreadable += 1
            continue
        if not selection.wants(rejection):
            summary.unselected += 1
            continue
        if (record.partition, record.offset) in done and not selection.again:
            summary.already[rejection.error] += 1
            continue
        summary.redriven[rejection.error] += 1
        key = usage_key(rejection.payload, record.key)
        # A lone surrogate (only a hand-written DLQ record has one) cannot be UTF-8.
        value = rejection.payload.encode("utf-8", "replace")
        chosen.append(Redrive(record.partition, record.offset, rejection.error, key, value))
    return chosen


def usage_key(payload: str, dlq_key: bytes | None) -> bytes | None:
    """The account of the payload, as every usage message is keyed; the DLQ record's own
    key (pricing keeps the source's) when the payload names none."""
    try:
        account = json.loads(payload).get("account_id")
    except (ValueError, AttributeError):
        return dlq_key
    if isinstance(account, str) and _ACCOUNT.fullmatch(account):
        return account_key(account)
    return dlq_key


async def redrive(
    settings: Settings, selection: Selection, dry_run: bool, progress: ProgressReport
) -> RedriveSummary:
    await create_topics(settings)
    topics = Topics.from_settings(settings)
    summary = RedriveSummary(dry_run=dry_run)
    pool = await open_projection(settings.database_url)
    try:
        done = {(r["partition"], r["offset"]) for r in await pool.fetch(DONE, topics.dlq)}
        async with LogReader(settings) as reader:
            targets = await reader.end_offsets(topics.dlq)
            progress.total = sum(targets.values())
            producer = None if dry_run else kafka.producer(settings)
            if producer is not None:
                await producer.start()
            try:
                async for records in reader.read_range(topics.dlq, {}, targets, BATCH_RECORDS):
                    chosen = choose(records, selection, done, summary)
                    if producer is None:
                        summary.listed += [_describe(topics.dlq, c) for c in chosen]
                        del summary.listed[LISTED:]
                    elif chosen:
                        sent = [
                            await producer.send(topics.usage, c.value, key=c.key) for c in chosen
                        ]
                        await asyncio.gather(*sent)
                        await _record(pool, topics.dlq, chosen)
                    progress.advance(len(records))
            finally:
                if producer is not None:
                    await producer.stop()
    finally:
        await pool.close()
    return summary


async def _record(pool: asyncpg.Pool, topic: str, chosen: Sequence[Redrive]) -> None:
    await pool.execute(
        RECORD,
        topic,
        [c.partition for c in chosen],
        [c.offset for c in chosen],
        [c.error for c in chosen],
    )


def _describe(topic: str, chosen: Redrive) -> str:
    key = chosen.key.decode("utf-8", "replace") if chosen.key else "(no key)"
    return f"{topic}/{chosen.partition}@{chosen.offset} {chosen.error} (account {key})"


def main(args: argparse.Namespace) -> int:
    """Exit 0 when done, 2 when Kafka or PostgreSQL cannot be used."""
    selection = Selection(
        codes=frozenset(args.error) if args.error else DEFAULT_CODES,
        start=args.start,
        end=args.end,
        again=args.again,
    )
    settings = load_settings()
    stream = sys.stdout if sys.stdout.isatty() else sys.stderr
    try:
        with ProgressReport("redrive", None, stream=stream) as progress:
            summary = asyncio.run(redrive(settings, selection, args.dry_run, progress))
    except (KafkaError, OSError, asyncpg.PostgresError) as error:
        print(f"ledger redrive: cannot run: {error!r}", file=sys.stderr)
        return 2
    print(summary.lines())
    return 0
