"""The hourly usage rollup on the real PostgreSQL: written with the batch, idempotent, and
what migration 005 computes from the journal of a projection made before it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from services.common.migrations import migrate
from services.common.settings import Settings
from services.projector.apply import apply, prepare_records
from services.projector.store import open_projection
from tests.factories import debited, granted
from tests.integration.projector_harness import Log

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TOPIC = "test-ledger.v1"
HOURLY = (
    "SELECT account_id, hour, model, requests, tokens, credits FROM usage_hourly ORDER BY 1, 2, 3"
)
T = datetime(2026, 11, 27, 19, 30, tzinfo=UTC)


@pytest.fixture
async def pool(isolated_settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await open_projection(isolated_settings.database_url)
    yield pool
    await pool.close()


async def hourly(pool: asyncpg.Pool) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await pool.fetch(HOURLY)]


async def test_the_rollup_is_written_once_and_migration_005_recomputes_it(
    pool: asyncpg.Pool, isolated_settings: Settings
) -> None:
    log = Log()
    records = log.records(
        granted("a", 1_000), debited("a", 10, at=T), debited("a", 4, at=T + timedelta(minutes=29)),
        debited("a", 6, at=T + timedelta(hours=1)), debited("b", 8, model="mimo-v2-omni", at=T),
    )  # fmt: skip
    async with pool.acquire() as conn:
        await apply(conn, TOPIC, prepare_records(records))
        await apply(conn, TOPIC, prepare_records(records))  # redelivered: nothing added
    hour = T.replace(minute=0)
    live = await hourly(pool)
    assert live == [
        ("a", hour, "mimo-v2-pro", 2, 7, 14),
        ("a", hour + timedelta(hours=1), "mimo-v2-pro", 1, 3, 6),
        ("b", hour, "mimo-v2-omni", 1, 4, 8),
    ]
    # A projection from before migration 005 has a journal and no hourly rows.
    async with pool.acquire() as conn:
        await conn.execute("DROP TABLE usage_hourly")
        await conn.execute("DELETE FROM schema_versions WHERE name = '005_usage_hourly.sql'")
    assert await migrate(isolated_settings.database_url) == ["projector 005_usage_hourly.sql"]
    assert await hourly(pool) == live
