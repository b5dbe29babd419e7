"""The sending loop loadgen and replay share: chunks of keyed messages, paced, with progress."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator, Sequence

from services.common.progress import ProgressReport
from services.gateway.publisher import UsagePublisher
from services.traffic.pacing import TokenBucket, paced_chunk_size

KeyedMessage = tuple[bytes, bytes]


def rechunk(chunks: Iterable[Sequence[KeyedMessage]], size: int) -> Iterator[list[KeyedMessage]]:
    """The same messages in the same order, in lists of `size` (the last may be shorter)."""
    pending: list[KeyedMessage] = []
    for chunk in chunks:
        pending.extend(chunk)
        while len(pending) >= size:
            yield pending[:size]
            del pending[:size]
    if pending:
        yield pending


async def publish_chunks(
    publisher: UsagePublisher,
    chunks: Iterable[Sequence[KeyedMessage]],
    rate: float,
    progress: ProgressReport,
    largest_chunk: int = 512,
) -> int:
    """Publishes every message at about `rate` a second (0: as fast as possible); returns
    how many, once the broker has acknowledged them all."""
    bucket = None
    if rate > 0:
        size = paced_chunk_size(rate, largest_chunk)
        chunks = rechunk(chunks, size)
        bucket = TokenBucket(rate=rate, burst=size, now=time.monotonic())
    sent = 0
    for chunk in chunks:
        if bucket is not None and (wait := bucket.take(len(chunk), time.monotonic())) > 0:
            await asyncio.sleep(wait)
        await publisher.publish_many(chunk)
        sent += len(chunk)
        progress.advance(len(chunk))
    await publisher.flush()
    return sent
