"""What the routes share, opened in the app's lifespan and closed when it ends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaProducer
from fastapi import Request

from schemas.entry_signing import read_signing_key
from services.api.database import open_pool
from services.api.grants import FAULT_AFTER_CLAIM, Claims, Publisher
from services.api.holds.relay import FAULT_AFTER_HOLD_COMMIT, HoldRelay
from services.api.ingest import UsageIngest
from services.api.keys.ring import KeyRing, open_keyring
from services.api.recovery import sweep_forever
from services.common import kafka
from services.common.faults import Fault, fault_point, no_fault
from services.common.settings import Settings
from services.common.topics import Topics, create_topics
from services.pricing.pricebook import PriceBook, load_pricebook


@dataclass(frozen=True)
class FaultPoints:
    """The API's test fault points (LEDGER_FAULT), chosen once when the app is built."""

    after_claim: Fault = no_fault
    after_hold_commit: Fault = no_fault

    @classmethod
    def from_settings(cls, settings: Settings) -> FaultPoints:
        return cls(
            fault_point(settings, FAULT_AFTER_CLAIM),
            fault_point(settings, FAULT_AFTER_HOLD_COMMIT),
        )


@dataclass(frozen=True)
class Resources:
    pool: asyncpg.Pool
    producer: AIOKafkaProducer
    publisher: Publisher
    pricebook: PriceBook
    claims: Claims
    keys: KeyRing
    relay: HoldRelay
    faults: FaultPoints
    usage: UsageIngest


@asynccontextmanager
async def open_resources(
    settings: Settings, faults: FaultPoints = FaultPoints()
) -> AsyncIterator[Resources]:
    pricebook = load_pricebook(settings.ledger_pricebook)
    signing_key = read_signing_key(settings.ledger_entry_signing_key)
    await create_topics(settings)
    async with AsyncExitStack() as stack:
        pool = await open_pool(settings.database_url)
        stack.push_async_callback(pool.close)
        producer = kafka.producer(settings)
        await producer.start()
        stack.push_async_callback(producer.stop)
        topics = Topics.from_settings(settings)
        publisher = Publisher(producer, topics.ledger)
        claims = Claims(pool, publisher, signing_key, faults.after_claim)
        keys = await stack.enter_async_context(open_keyring(pool, settings.database_url))
        await stack.enter_async_context(background(sweep_forever(pool, publisher)))
        relay = HoldRelay(pool, producer, topics.holds)
        await stack.enter_async_context(background(relay.run()))
        usage = UsageIngest(settings, topics.usage)
        stack.push_async_callback(usage.close)
        yield Resources(pool, producer, publisher, pricebook, claims, keys, relay, faults, usage)


@asynccontextmanager
async def background(work: Awaitable[None]) -> AsyncIterator[None]:
    """Runs `work` while the block runs; cancelled at its end."""
    task = asyncio.ensure_future(work)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def resources(request: Request) -> Resources:
    """A route dependency: the app's open resources. Async on purpose: FastAPI runs a plain
    function dependency in its thread pool, a thread hand-off on every request."""
    opened: Resources = request.app.state.resources
    return opened
