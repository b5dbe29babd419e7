"""Shared set-up for the API tests (no tests here): the app on a real PostgreSQL and Kafka,
the projector's tables, rows written straight into them, and ledger.v1 read back."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.events import LedgerEntry, parse_ledger_entry
from services.api.app import create_app
from services.common.migrations import migrate
from services.common.settings import Settings
from services.common.topics import Topics

READ_TOKEN = "read-token-0123456789"
GATEWAY_TOKEN = "gateway-token-0123456789"
ADMIN_TOKEN = "admin-token-0123456789"
TOKENS = f"{READ_TOKEN}:read,{GATEWAY_TOKEN}:gateway,{ADMIN_TOKEN}:admin"
READ = {"Authorization": f"Bearer {READ_TOKEN}"}
GATEWAY = {"Authorization": f"Bearer {GATEWAY_TOKEN}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def with_tokens(settings: Settings, tokens: str = TOKENS) -> Settings:
    return settings.model_copy(update={"ledger_api_tokens": tokens})


@asynccontextmanager
async def api_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan run (pool, producer, price book), called in-process."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


async def create_key(
    client: httpx.AsyncClient, scope: str, account_id: str | None = None, name: str | None = None
) -> dict[str, Any]:
    """POST /v1/keys as admin; the 201 answer (with the secret)."""
    body: dict[str, Any] = {"scope": scope, "account_id": account_id, "name": name}
    answer = await client.post("/v1/keys", json=body, headers=ADMIN)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


async def create_projection(database_url: str) -> None:
    """Every component's tables (the projection and the holds among them), as a service's
    start makes them."""
    await migrate(database_url)


def new_account(label: str) -> str:
    return f"acct-{label}-{uuid.uuid4().hex[:10]}"


async def insert_entry(
    conn: asyncpg.Connection,
    account_id: str,
    kind: str,
    credits: int,
    *,
    occurred_at: datetime | None = None,
    model: str | None = None,
    multiplier: Decimal | None = None,
    billable_tokens: int | None = None,
    reason: str | None = None,
) -> uuid.UUID:
    """One journal row as the projector writes it (credits = signed effect)."""
    entry_id = uuid.uuid4()
    debit = kind == "debited"
    await conn.execute(
        """INSERT INTO ledger.journal (entry_id, account_id, kind, credits, model, tier,
               multiplier, billable_tokens, price_version, usage_event_id, reason, reference,
               occurred_at, content_digest, source_partition, source_offset)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 0, 0)""",
        entry_id,
        account_id,
        kind,
        credits,
        model,
        "256k" if debit else None,
        multiplier,
        billable_tokens,
        "2026-04-03" if debit else None,
        f"usage-{entry_id}" if debit else None,
        reason,
        None if debit else "order-1",
        occurred_at or datetime.now(UTC),
        hashlib.sha256(entry_id.bytes).hexdigest(),
    )
    return entry_id


async def insert_balance(
    conn: asyncpg.Connection, account_id: str, purchased: int, spent: int, entries: int
) -> None:
    balance = purchased - spent
    await conn.execute(
        """INSERT INTO ledger.balances
               (account_id, balance, purchased, adjusted, spent, entries, status, updated_at)
           VALUES ($1, $2, $3, 0, $4, $5, $6, $7)""",
        account_id,
        balance,
        purchased,
        spent,
        entries,
        "active" if balance > 0 else "exhausted",
        datetime(2026, 11, 27, 19, 0, tzinfo=UTC),
    )


async def ledger_entries_for(settings: Settings, account_id: str) -> list[LedgerEntry]:
    """Every event on ledger.v1 keyed by `account_id`, read from offset 0 to the end."""
    topic = Topics.from_settings(settings).ledger
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.ledger_partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: list[LedgerEntry] = []
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            batches = await consumer.getmany(*partitions, timeout_ms=1000)
            for records in batches.values():
                found += [
                    parse_ledger_entry(r.value)
                    for r in records
                    if r.key == account_id.encode() and r.value is not None
                ]
        return found
    finally:
        await consumer.stop()
