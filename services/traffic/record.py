"""`ledger record FILE.jsonl`: writes usage.v1 from offset 0 to a file `ledger replay` reads.

Reads every partition up to the end offsets taken at start (read_committed), one message
value per line. A value that cannot be one line (empty, or holding a line break) cannot be
replayed from this format: it is not written, and reported.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from services.common.kafka import consumer
from services.common.progress import ProgressReport, events_per_second
from services.common.settings import Settings, load_settings
from services.common.topics import Topics, create_topics

FETCH_RECORDS = 10_000


@dataclass
class RecordSummary:
    topic: str
    written: int = 0
    skipped: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    def lines(self) -> str:
        rate = events_per_second(self.written, self.elapsed)
        text = [
            f"record: wrote {self.written:,} messages of {self.topic}, "
            f"skipped {len(self.skipped):,}, elapsed {self.elapsed:.2f} s, {rate:,.0f} messages/s"
        ]
        return "\n".join(text + [f"  skipped {where}" for where in self.skipped[:20]])


def one_line(value: bytes | None) -> bool:
    return value is not None and value.strip() != b"" and b"\n" not in value and b"\r" not in value


async def _end_offsets(reader: Any, topic: str) -> dict[TopicPartition, int]:
    """Where the copy stops: each partition's end (last stable offset) at start."""
    # Without a group, a subscribed consumer is assigned every partition once it starts.
    tps = [TopicPartition(topic, p) for p in sorted(reader.partitions_for_topic(topic) or ())]
    if not tps:
        return {}
    await reader.seek_to_beginning(*tps)
    ends: dict[TopicPartition, int] = await reader.end_offsets(tps)
    return ends


async def _copy(
    reader: Any,
    ends: dict[TopicPartition, int],
    out: BinaryIO,
    summary: RecordSummary,
    progress: ProgressReport,
) -> None:
    remaining = {tp for tp, end in ends.items() if end > 0}
    while remaining:
        batches = await reader.getmany(*remaining, timeout_ms=1000, max_records=FETCH_RECORDS)
        for tp, records in batches.items():
            in_range = [r for r in records if r.offset < ends[tp]]
            for record in in_range:
                if one_line(record.value):
                    out.write(record.value + b"\n")
                    summary.written += 1
                else:
                    summary.skipped.append(f"partition {tp.partition} offset {record.offset}")
            progress.advance(len(in_range))
        for tp in list(remaining):
            if await reader.position(tp) >= ends[tp]:
                remaining.discard(tp)


async def run_record(settings: Settings, path: Path, progress: ProgressReport) -> RecordSummary:
    await create_topics(settings)
    topic = Topics.from_settings(settings).usage
    summary = RecordSummary(topic=topic)
    reader = consumer(settings, topic, group_id=None)
    await reader.start()
    try:
        ends = await _end_offsets(reader, topic)
        with path.open("wb") as out:
            await _copy(reader, ends, out, summary, progress)
    finally:
        await reader.stop()
    summary.elapsed = progress.elapsed()
    return summary


def main(args: argparse.Namespace) -> int:
    """Exit 0 when every message was written, 1 when some could not be."""
    with ProgressReport("record", None) as progress:
        try:
            summary = asyncio.run(run_record(load_settings(), Path(args.file), progress))
        except KafkaError as error:
            print(f"ledger record: Kafka failed: {error!r}", file=sys.stderr)
            return 1
    print(summary.lines())
    return 1 if summary.skipped else 0
