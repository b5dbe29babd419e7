"""`ledger replay FILE.jsonl`: publishes recorded usage.recorded lines to usage.v1 as they are.

Each line must validate as UsageRecorded; one that does not is rejected locally (counted and
reported by line number) and not sent. The bytes sent are the line's own, so a recorded
stream replays byte for byte.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka.errors import KafkaError
from pydantic import ValidationError

from schemas.events import UsageRecorded
from services.common.kafka import account_key
from services.common.progress import ProgressReport, events_per_second
from services.common.settings import Settings, load_settings
from services.common.topics import create_topics
from services.gateway.publisher import UsagePublisher
from services.traffic.sending import KeyedMessage, publish_chunks

CHUNK_LINES = 1024
# The report names this many rejected lines; the count covers them all.
REPORTED_REJECTIONS = 20


@dataclass(frozen=True)
class RejectedLine:
    number: int
    reason: str


@dataclass
class ReplaySummary:
    sent: int = 0
    rejected: list[RejectedLine] = field(default_factory=list)
    elapsed: float = 0.0

    def lines(self) -> str:
        rate = events_per_second(self.sent, self.elapsed)
        text = [
            f"replay: sent {self.sent:,}, rejected locally {len(self.rejected):,}, "
            f"elapsed {self.elapsed:.2f} s, {rate:,.0f} events/s"
        ]
        text += [f"  line {r.number}: {r.reason}" for r in self.rejected[:REPORTED_REJECTIONS]]
        if len(self.rejected) > REPORTED_REJECTIONS:
            text.append(f"  ... and {len(self.rejected) - REPORTED_REJECTIONS:,} more")
        return "\n".join(text)


def check_line(line: bytes) -> KeyedMessage | str:
    """The message to send for one recorded line, or why it is rejected."""
    try:
        event = UsageRecorded.model_validate_json(line)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"{where}: {first['msg']}" if where else first["msg"]
    return account_key(event.account_id), line


def checked_chunks(
    lines: Iterable[bytes], rejected: list[RejectedLine]
) -> Iterator[list[KeyedMessage]]:
    """Valid lines as keyed messages, CHUNK_LINES at a time; blank lines are skipped."""
    chunk: list[KeyedMessage] = []
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            continue
        checked = check_line(line)
        if isinstance(checked, str):
            rejected.append(RejectedLine(number, checked))
            continue
        chunk.append(checked)
        if len(chunk) >= CHUNK_LINES:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def run_replay(
    settings: Settings, path: Path, rate: float, progress: ProgressReport
) -> ReplaySummary:
    await create_topics(settings)
    summary = ReplaySummary()
    with path.open("rb") as lines:
        async with UsagePublisher(settings) as publisher:
            chunks = checked_chunks(lines, summary.rejected)
            summary.sent = await publish_chunks(publisher, chunks, rate, progress, CHUNK_LINES)
    summary.elapsed = progress.elapsed()
    return summary


def _count_lines(path: Path) -> int:
    with path.open("rb") as lines:
        return sum(1 for line in lines if line.strip())


def main(args: argparse.Namespace) -> int:
    """Exit 0 when every line was sent, 1 when some were rejected locally or Kafka failed."""
    path = Path(args.file)
    if not path.is_file():
        print(f"ledger replay: no such file: {path}", file=sys.stderr)
        return 2
    with ProgressReport("replay", _count_lines(path)) as progress:
        try:
            summary = asyncio.run(run_replay(load_settings(), path, args.rate, progress))
        except KafkaError as error:
            print(f"ledger replay: Kafka failed: {error!r}", file=sys.stderr)
            return 1
    print(summary.lines())
    return 1 if summary.rejected else 0
