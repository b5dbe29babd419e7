"""POST /v1/usage: gateways that cannot reach Kafka hand their usage events to the API.

A batch is checked event by event against the contract and against what pricing would
reject (services/pricing/admission.py, the very rule pricing applies, with the price book
this API loaded, judged against the time of arrival), so a gateway learns at once which
usage cannot be billed. The events that pass are published to
usage.v1 in one Kafka transaction, keyed by account, and the answer waits for its commit.
Pricing reads with `read_committed`, so a batch whose transaction did not commit is never
seen: a failure publishes nothing, never half a batch. If the commit's outcome is unknown
(a timeout), the gateway sends the batch again; event ids make the copy a no-op downstream.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from schemas.events import UsageRecorded, dump
from services.common import kafka
from services.common.kafka import account_key
from services.common.settings import Settings
from services.pricing.admission import judge_usage
from services.pricing.pricebook import PriceBook, Rejection

log = logging.getLogger(__name__)

MAX_EVENTS = 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The client gets a 503 after this long and sends the batch again.
PUBLISH_TIMEOUT_S = 15.0


class IngestUnavailable(Exception):
    """Kafka did not take the batch; nothing of it is visible to pricing."""


@dataclass(frozen=True)
class RejectedEvent:
    index: int
    error: str
    detail: str


@dataclass(frozen=True)
class CheckedBatch:
    valid: tuple[UsageRecorded, ...]
    rejected: tuple[RejectedEvent, ...]


def check_batch(
    items: Sequence[object], book: PriceBook, received: datetime, window: timedelta
) -> CheckedBatch:
    """Each item against `usage.recorded`, then against pricing's rule at `received`; a
    rejected item names its index and pricing's code."""
    valid: list[UsageRecorded] = []
    rejected: list[RejectedEvent] = []
    for index, item in enumerate(items):
        try:
            usage = UsageRecorded.model_validate(item)
        except ValidationError as error:
            rejected.append(RejectedEvent(index, "invalid_event", _describe(error)))
            continue
        verdict = judge_usage(usage, book, received, window)
        if isinstance(verdict, Rejection):
            rejected.append(RejectedEvent(index, verdict.code, verdict.detail))
        else:
            valid.append(usage)
    return CheckedBatch(tuple(valid), tuple(rejected))


def _describe(error: ValidationError) -> str:
    parts = []
    for problem in error.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in problem.get("loc", ())) or "event"
        parts.append(f"{where}: {problem.get('msg', 'invalid')}")
    return "; ".join(parts)


class UsageIngest:
    """A transactional producer of this API process's own, started on first use.

    Transactions of one producer cannot overlap, so batches take turns; a producer that
    failed is dropped and the next batch starts a fresh one.
    """

    def __init__(self, settings: Settings, topic: str) -> None:
        self._settings = settings
        self.topic = topic
        self.window = settings.dedup_window  # what check_batch judges occurred_at by
        self._producer: AIOKafkaProducer | None = None
        self._turn = asyncio.Lock()

    async def publish(self, events: Sequence[UsageRecorded], received: datetime) -> None:
        """Returns once the broker committed every event; raises IngestUnavailable otherwise.

        Each record carries `received` as its Kafka timestamp: the instant check_batch judged
        the events against is the one pricing judges them against, so an event accepted
        here is never rejected by pricing for its time."""
        timestamp_ms = (received - _EPOCH) // timedelta(milliseconds=1)
        async with self._turn:
            try:
                async with asyncio.timeout(PUBLISH_TIMEOUT_S):
                    producer = await self._started()
                    await self._publish_in_transaction(producer, events, timestamp_ms)
            except (KafkaError, TimeoutError, OSError) as error:
                log.warning("usage batch of %d not published: %r", len(events), error)
                await self._discard()
                raise IngestUnavailable(f"could not publish to {self.topic}: {error!r}") from error

    async def _publish_in_transaction(
        self, producer: AIOKafkaProducer, events: Sequence[UsageRecorded], timestamp_ms: int
    ) -> None:
        await producer.begin_transaction()
        try:
            sent = [
                await producer.send(
                    self.topic,
                    dump(e),
                    key=account_key(e.account_id),
                    timestamp_ms=timestamp_ms,
                )
                for e in events
            ]
            await asyncio.gather(*sent)
            await producer.commit_transaction()
        except BaseException:
            # Aborting may fail too when the broker is gone; the producer is dropped then,
            # and the broker aborts the open transaction when it times out.
            try:
                await asyncio.shield(producer.abort_transaction())
            except (KafkaError, OSError) as error:
                log.warning("abort of a failed usage batch failed: %r", error)
            raise

    async def _started(self) -> AIOKafkaProducer:
        if self._producer is None:
            # Unique per process: two API processes must never fence each other off.
            transactional_id = f"{self.topic}-api-ingest-{uuid.uuid4()}"
            producer = kafka.producer(self._settings, transactional_id)
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _discard(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await producer.stop()
            except (KafkaError, OSError) as error:
                log.warning("stopping a failed ingest producer: %r", error)

    async def close(self) -> None:
        async with self._turn:
            await self._discard()
