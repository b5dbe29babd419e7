"""How far the pipeline has got: debits committed by pricing, entries applied by the projector.

Pricing commits its consumed usage.v1 offsets in the same Kafka transaction as the debits it
wrote, so the committed offsets of its group count the usage events whose debits are
committed on ledger.v1 (end offsets would also count transaction markers).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import asyncpg

from benchmarks.processes import BenchError, Service
from services.common import kafka
from services.common.settings import Settings
from services.common.topics import Topics
from services.projector.store import LIVE_SCHEMA

POLL_S = 0.02
APPLIED = f"SELECT coalesce(max(value), 0) FROM {LIVE_SCHEMA}.projector_counters WHERE name = $1"

Counter = Callable[[], Awaitable[int]]


@dataclass(frozen=True)
class Reached:
    """When a count reached its target, and when it first moved (startup excluded)."""

    at: float
    first_progress_at: float | None


async def applied_count(conn: asyncpg.Connection, counter: str = "applied") -> int:
    """A projector counter; 0 while the projector has not created its tables yet."""
    try:
        value: int = await conn.fetchval(APPLIED, counter)
    except asyncpg.UndefinedTableError:
        return 0
    return value


class PricingOffsets:
    """Sum of the usage.v1 offsets pricing's consumer group has committed."""

    def __init__(self, settings: Settings) -> None:
        self.group = f"{settings.ledger_topic_prefix}ledger-pricing"
        self.topic = Topics.from_settings(settings).usage
        self.admin = kafka.admin(settings)

    async def __aenter__(self) -> PricingOffsets:
        await self.admin.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.admin.close()

    async def count(self) -> int:
        offsets = await self.admin.list_consumer_group_offsets(self.group)
        return sum(meta.offset for tp, meta in offsets.items() if tp.topic == self.topic)


async def wait_for_count(
    count: Counter, target: int, limit_s: float, watched: Sequence[Service] = ()
) -> Reached:
    """Polls `count` until it reaches `target`; fails early when a watched service dies."""
    deadline = time.monotonic() + limit_s
    first = None
    while True:
        value = await count()
        now = time.monotonic()
        if value > 0 and first is None:
            first = now
        if value >= target:
            return Reached(now, first)
        if now > deadline:
            raise BenchError(f"only {value:,} of {target:,} after {limit_s:.0f} s")
        for service in watched:
            service.check_alive()
        await asyncio.sleep(POLL_S)


def patience(events: int) -> float:
    """How long a stage may take before the bench gives up: generous, but never forever."""
    return 120.0 + events / 2_000
