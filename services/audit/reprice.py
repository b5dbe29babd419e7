"""`ledger reprice [--json]`: re-prices usage.v1 with the current price book (the pure
pricing code of services/pricing) and compares debit by debit with ledger.v1.

Both topics are read from offset 0 up to their end offsets at start (read_committed). The
first debit per entry_id counts, as at the projector; a re-sent usage event is priced once.
Exit 0 when there is no drift, 1 when there is some, 2 when the price book cannot be read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from uuid import UUID

import msgspec
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from schemas.codec import DEBITS, UsageRecordedStruct, decode_ledger_entry, decode_usage
from schemas.events import CreditsDebited
from services.audit.drift import DriftReport, Outcome, compare_outcomes
from services.audit.reading import BATCH_RECORDS, LogReader
from services.audit.reprice_report import RepriceSummary
from services.common.progress import ProgressReport
from services.common.settings import Settings, load_settings
from services.common.topics import Topics, create_topics
from services.pricing.debits import debit_entry_id, price_message
from services.pricing.pricebook import PriceBook, PriceBookError, load_pricebook


async def price_usage_topic(
    reader: LogReader,
    topic: str,
    book: PriceBook,
    summary: RepriceSummary,
    progress: ProgressReport,
    window: timedelta,
) -> dict[UUID, Outcome]:
    now = datetime.now(UTC)
    outcomes: dict[UUID, Outcome] = {}
    targets = await reader.end_offsets(topic)
    async for records in reader.read_range(topic, {}, targets, BATCH_RECORDS):
        for record in records:
            summary.usage_messages += 1
            # Judged against the record's own Kafka timestamp, as pricing judged it.
            priced = price_message(record, book, now, window)
            if isinstance(priced, CreditsDebited):
                outcomes.setdefault(priced.entry_id, Outcome(priced.model, priced.credits))
            elif (event := _event(record.value)) is not None:
                rejection = Outcome(event.model, None, priced.error)
                outcomes.setdefault(debit_entry_id(event.account_id, event.event_id), rejection)
            else:
                summary.unparseable_usage += 1
        progress.advance(len(records))
    return outcomes


def _event(value: bytes | None) -> UsageRecordedStruct | None:
    """The usage event behind a rejection, when it is one (unknown model, over context)."""
    try:
        return decode_usage(value or b"")
    except msgspec.DecodeError:
        return None


async def recorded_debits(
    reader: LogReader, topic: str, summary: RepriceSummary, progress: ProgressReport
) -> dict[UUID, Outcome]:
    debits: dict[UUID, Outcome] = {}
    targets = await reader.end_offsets(topic)
    async for records in reader.read_range(topic, {}, targets, BATCH_RECORDS):
        for record in records:
            try:
                entry = decode_ledger_entry(record.value or b"")
            except (msgspec.DecodeError, ValidationError):
                continue
            if isinstance(entry, DEBITS):
                summary.ledger_debits += 1
                debits.setdefault(entry.entry_id, Outcome(entry.model, entry.credits))
        progress.advance(len(records))
    return debits


async def run_reprice(
    settings: Settings, book: PriceBook, progress: ProgressReport
) -> tuple[DriftReport, RepriceSummary]:
    await create_topics(settings)
    topics = Topics.from_settings(settings)
    summary = RepriceSummary(versions=[v.version for v in book.versions])
    async with LogReader(settings) as reader:
        now = await price_usage_topic(
            reader, topics.usage, book, summary, progress, settings.dedup_window
        )
        then = await recorded_debits(reader, topics.ledger, summary, progress)
    summary.elapsed = progress.elapsed()
    return compare_outcomes(now, then), summary


def main(args: argparse.Namespace) -> int:
    """Exit 0: no drift; 1: drift (reported by model and in total); 2: cannot run."""
    settings = load_settings()
    try:
        book = load_pricebook(settings.ledger_pricebook)
    except PriceBookError as error:
        print(f"ledger reprice: {error}", file=sys.stderr)
        return 2
    stream = sys.stdout if sys.stdout.isatty() else sys.stderr
    try:
        with ProgressReport("reprice", None, stream=stream) as progress:
            report, summary = asyncio.run(run_reprice(settings, book, progress))
    except (KafkaError, OSError) as error:
        print(f"ledger reprice: cannot run: {error!r}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summary.document(report), indent=2))
    else:
        print(summary.lines(report))
    return 1 if report.total.drifting else 0
