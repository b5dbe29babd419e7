"""UsagePublisher: the client a Python LLM gateway uses to put usage events on usage.v1.

Messages are keyed by account id and batched per partition: each partition gets a record
batch built by the caller (`create_batch`/`send_batch`), which is several times faster than
awaiting `send` per message (docs/architecture.md, Why aiokafka). The partition is the one
Kafka's default partitioner picks for the key, so this client and any other Kafka producer
agree, and one account's events stay in order. Nothing is dropped: a batch that cannot be
delivered makes the next call (`publish`, `flush` or leaving the `async with`) raise.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError

from schemas.events import UsageRecorded, dump
from services.common.kafka import account_key, connection, partition_for
from services.common.settings import Settings
from services.common.topics import Topics

# One batch per partition of up to 1 MiB: ~3,500 usage events, one request for them all.
# Uncompressed: the CPU of the gateway's host serves requests; the pipeline's own producers
# compress (services/common/kafka.py).
BATCH_BYTES = 1024 * 1024
# How long an event may wait in a partly filled batch before it is sent anyway.
DEFAULT_LINGER_S = 0.05
# Room for the record batch's own header and a record's framing.
BATCH_OVERHEAD = 256
_PRUNE_AT = 64


class UsagePublisher:
    """`async with UsagePublisher(settings) as pub: await pub.publish(event)`."""

    def __init__(
        self, settings: Settings, *, topic: str | None = None, linger_s: float = DEFAULT_LINGER_S
    ) -> None:
        self.topic = topic or Topics.from_settings(settings).usage
        self._settings = settings
        self._linger_s = linger_s
        self._producer: Any = None
        self._partitions: list[int] = []
        self._open: dict[int, Any] = {}
        self._send_locks: dict[int, asyncio.Lock] = {}
        self._in_flight: list[asyncio.Future[Any]] = []
        self._failure: BaseException | None = None
        self._linger_task: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()

    async def __aenter__(self) -> UsagePublisher:
        self._producer = AIOKafkaProducer(
            **connection(self._settings),
            enable_idempotence=True,
            acks="all",
            max_batch_size=BATCH_BYTES,
            linger_ms=5,
        )
        try:
            # A producer whose start failed still holds a client: stopped here, not leaked.
            await self._producer.start()
            self._partitions = sorted(await self._producer.partitions_for(self.topic))
        except BaseException:
            await self._producer.stop()
            raise
        self._send_locks = {p: asyncio.Lock() for p in self._partitions}
        if self._linger_s > 0:
            self._linger_task = asyncio.create_task(self._linger())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Flushes what was published, even when the block failed, then closes."""
        try:
            if self._linger_task is not None:
                # Never cancelled: a cancel could strike while it holds a batch it has taken
                # out of the open batches but not yet handed to the producer, losing it.
                self._closing.set()
                await self._linger_task
            await self.flush()
        finally:
            await self._producer.stop()

    def partition_for(self, key: bytes) -> int:
        """The partition Kafka's default partitioner gives `key`."""
        return partition_for(key, len(self._partitions))

    async def publish(self, event: UsageRecorded) -> None:
        await self.publish_raw(account_key(event.account_id), dump(event))

    async def publish_raw(self, account_key: bytes, value: bytes) -> None:
        """Queues `value` as it is, keyed by `account_key`; for replay and malformed input."""
        await self.publish_many(((account_key, value),))

    async def publish_many(self, messages: Iterable[tuple[bytes, bytes]]) -> None:
        """`publish_raw` for each (account key, value), in order, without a coroutine each."""
        if self._failure is not None:
            raise self._failure
        partitions, open_batches = len(self._partitions), self._open
        for key, value in messages:
            partition = partition_for(key, partitions)
            builder = open_batches.get(partition)
            if builder is None:
                open_batches[partition] = self._new_batch(key, value)
            elif builder.append(timestamp=None, key=key, value=value) is None:
                # The batch is full. The message goes into a fresh batch before anything
                # awaits, so a concurrent caller cannot slip a message in between.
                open_batches[partition] = self._new_batch(key, value)
                await self._send(partition, builder)

    def _new_batch(self, key: bytes, value: bytes) -> Any:
        # A batch takes its first message whatever its size; the broker would refuse it.
        if len(key) + len(value) > BATCH_BYTES - BATCH_OVERHEAD:
            raise MessageSizeTooLargeError(f"a message of {len(value):,} bytes")
        builder = self._producer.create_batch()
        builder.append(timestamp=None, key=key, value=value)
        return builder

    async def flush(self) -> None:
        """Sends every queued message and waits until the broker has acknowledged them all."""
        await self._send_open()
        # Sends started elsewhere (the linger task) hold or queue for a partition's lock,
        # and the locks are fair: once each lock is free, every started send is in flight.
        for lock in self._send_locks.values():
            async with lock:
                pass
        in_flight, self._in_flight = self._in_flight, []
        results = await asyncio.gather(*in_flight, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                self._failure = self._failure or result
        if self._failure is not None:
            raise self._failure

    async def _send(self, partition: int, builder: Any) -> None:
        # Fair per-partition locks keep batches in the order they were closed.
        async with self._send_locks[partition]:
            future = await self._producer.send_batch(builder, self.topic, partition=partition)
        self._in_flight.append(future)
        if len(self._in_flight) >= _PRUNE_AT:
            self._prune()

    def _prune(self) -> None:
        pending = []
        for future in self._in_flight:
            if not future.done():
                pending.append(future)
            elif future.exception() is not None:
                self._failure = self._failure or future.exception()
        self._in_flight = pending
        if self._failure is not None:
            raise self._failure

    async def _send_open(self) -> None:
        for partition, builder in list(self._open.items()):
            if builder.record_count() and self._open.get(partition) is builder:
                del self._open[partition]
                await self._send(partition, builder)

    async def _linger(self) -> None:
        while not self._closing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self._linger_s)
            try:
                await self._send_open()
            except Exception as error:  # kept, and raised to the next caller
                self._failure = self._failure or error
                return
