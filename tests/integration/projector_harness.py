"""Shared by the projector tests: a stand-in for a partition of ledger.v1, entries written
to the real ledger.v1, and waits on what the projector applied."""

from __future__ import annotations

import asyncio

import asyncpg

from schemas.events import LedgerEntry, dump
from services.common import kafka
from services.common.settings import Settings
from services.common.topics import Topics
from services.projector.ledger import RejectedMessage, SourcedEntry, read_message
from tests.entry_keys import VERIFY_KEYS
from tests.namespaces import send_keyed

SAFETY_TIMEOUT = 180.0  # only against a hang; nothing here asserts on durations


class Log:
    """Stands in for one partition of ledger.v1: hands out offsets in order."""

    def __init__(self, partition: int = 0) -> None:
        self.partition = partition
        self.offset = 0

    def records(self, *entries: LedgerEntry | bytes) -> list[SourcedEntry | RejectedMessage]:
        out = []
        for e in entries:
            raw = e if isinstance(e, bytes) else dump(e)
            out.append(read_message(raw, self.partition, self.offset, VERIFY_KEYS))
            self.offset += 1
        return out


BALANCES = """
SELECT account_id, balance, purchased, adjusted, spent, entries, status FROM balances ORDER BY 1
"""


async def publish(settings: Settings, *messages: LedgerEntry | tuple[str, bytes]) -> None:
    pairs = [
        (kafka.account_key(m.account_id), dump(m))
        if not isinstance(m, tuple)
        else (m[0].encode(), m[1])
        for m in messages
    ]
    await send_keyed(settings, Topics.from_settings(settings).ledger, pairs)


async def wait_applied(db: asyncpg.Connection, messages: int) -> None:
    """Waits until the projection's offsets cover `messages` messages (topics start at 0)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SAFETY_TIMEOUT
    while await db.fetchval("SELECT coalesce(sum(next_offset), 0) FROM applied_offsets") < messages:
        assert loop.time() < deadline, f"projector did not reach {messages} messages"
        await asyncio.sleep(0.2)
