"""Poison at the projector's apply surface (services/projector/apply.py), on the real
PostgreSQL: what cannot be applied is rejected with its reason, everything else is applied
in log order, and the verdicts do not depend on how the log is cut into batches."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.events import BALANCE_LIMIT, LedgerEntry, dump
from services.common.settings import Settings
from services.projector.apply import apply, prepare_records
from services.projector.ledger import RejectedMessage, SourcedEntry
from services.projector.store import open_projection
from tests.factories import (
    HALF,
    adjusted,
    debited,
    extreme_entries,
    granted,
    past_year_9999,
    refused_multiplier,
    sign,
    spend,
)
from tests.integration.projector_harness import BALANCES, Log

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

TOPIC = "test-ledger.v1"
REJECTED = "SELECT source_offset, reason FROM rejected_entries ORDER BY 1"


@pytest.fixture
async def pool(isolated_settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await open_projection(isolated_settings.database_url)
    yield pool
    await pool.close()


async def write(pool: asyncpg.Pool, records: list[SourcedEntry | RejectedMessage]) -> Any:
    async with pool.acquire() as conn:
        return await apply(conn, TOPIC, prepare_records(records))


async def table(pool: asyncpg.Pool, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await pool.fetch(sql)]


async def test_top_ups_past_the_limit_are_rejected_and_the_rest_applied(pool: asyncpg.Pool) -> None:
    log = Log()
    # The case: three top-ups of 2**62 to one account, normal traffic around them.
    first = log.records(granted("big", HALF), granted("n", 10), granted("big", HALF))
    second = log.records(granted("big", HALF), debited("n", 3), granted("big", HALF - 1))
    result = await write(pool, first)
    assert (result.applied, result.rejected) == (2, 1)
    assert [r.reason for r in result.new_rejections] == ["balance_limit"]
    result = await write(pool, second)
    assert (result.applied, result.rejected) == (2, 1)
    # Up to the limit exactly: 2**62 + 2**62 - 1 is BALANCE_LIMIT, stored exactly.
    assert await table(pool, BALANCES) == [
        ("big", BALANCE_LIMIT, BALANCE_LIMIT, 0, 0, 2, "active"),
        ("n", 7, 10, 0, 3, 2, "active"),
    ]
    assert await table(pool, REJECTED) == [(2, "balance_limit"), (3, "balance_limit")]
    detail = await pool.fetchval("SELECT error FROM rejected_entries WHERE source_offset = 2")
    assert "balance limit" in detail and "big" in detail
    assert dict(await table(pool, "SELECT name, value FROM projector_counters"))["rejected"] == 2
    # Redelivered: nothing changes and the rejections are not stored twice.
    again = await write(pool, [*first, *second])
    assert (again.applied, again.rejected) == (0, 0)
    assert await pool.fetchval("SELECT count(*) FROM rejected_entries") == 2


async def test_outflow_and_adjustments_are_bounded_both_ways(pool: asyncpg.Pool) -> None:
    log = Log()
    records = log.records(
        spend("d", HALF), spend("d", HALF), adjusted("d", -HALF), spend("d", HALF - 1),
        adjusted("u", HALF), adjusted("u", -HALF), adjusted("u", HALF), adjusted("u", HALF),
    )  # fmt: skip
    result = await write(pool, records)
    assert (result.applied, result.rejected) == (4, 4)
    # A downward adjustment flows out like a debit, an upward one in like a top-up; the
    # flows never shrink, so "u" cannot go up by 2**62 a second time after going down.
    assert [o for o, _ in await table(pool, REJECTED)] == [1, 2, 6, 7]
    assert await table(pool, BALANCES) == [
        ("d", -BALANCE_LIMIT, 0, 0, BALANCE_LIMIT, 2, "exhausted"),
        ("u", 0, 0, 0, 0, 2, "exhausted"),
    ]


async def test_values_postgresql_refuses_are_rejected_alone(pool: asyncpg.Pool) -> None:
    log = Log()
    normal = [granted(f"n{i}", 100 + i) for i in range(6)]
    nul = dump(granted("poison", 1)).replace(b'"order-1"', b'"order\\u0000"')
    poison: list[LedgerEntry | bytes] = [
        refused_multiplier("+200000"), refused_multiplier("-20000"), past_year_9999(), nul,
    ]  # fmt: skip
    interleaved = [m for pair in itertools.zip_longest(normal, poison) for m in pair if m]
    result = await write(pool, log.records(*interleaved))
    assert (result.applied, result.rejected) == (6, 4)
    reasons = dict(await table(pool, REJECTED))
    assert sorted(reasons.values()) == ["refused", "refused", "refused", "unprocessable"]
    assert await pool.fetchval("SELECT count(*) FROM balances WHERE account_id = 'poison'") == 0
    assert [r[1] for r in await table(pool, BALANCES)] == [100 + i for i in range(6)]
    errors = await pool.fetch("SELECT error FROM rejected_entries ORDER BY source_offset")
    assert "22003" in errors[0]["error"] and "NUL" in errors[3]["error"]


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    log=st.lists(extreme_entries, min_size=1, max_size=24),
    again=st.lists(st.tuples(st.integers(0, 23), st.booleans()), max_size=6),
    cuts=st.lists(st.integers(0, 30)),
)
async def test_verdicts_do_not_depend_on_how_the_log_is_cut(
    isolated_settings: Settings,
    log: list[LedgerEntry],
    again: list[tuple[int, bool]],
    cuts: list[int],
) -> None:
    """One batch, or the same log cut anywhere: the same journal, balances, conflicts and
    rejections, and every entry is either applied or rejected. Some entries come again
    later, as they are or with other credits under their entry_id."""
    repeats = [log[i % len(log)] for i, _ in again]
    log += [sign(e.model_copy(update={"credits": 1})) if other else e for e, (_, other) in
            zip(repeats, again, strict=True)]  # fmt: skip
    records = Log().records(*log)
    outcomes = []
    for schema, bounds in (("whole", [0, len(log)]), ("cut", [0, *sorted(cuts), len(log)])):
        pool = await open_projection(isolated_settings.database_url, schema)
        try:
            for i, j in itertools.pairwise(bounds):
                await write(pool, records[i:j])
            journal = await table(pool, "SELECT source_offset FROM journal ORDER BY 1")
            rejected = await table(pool, REJECTED)
            conflicts = await table(pool, "SELECT source_offset FROM conflicts ORDER BY 1")
            outcomes.append((journal, rejected, conflicts, await table(pool, BALANCES)))
            await pool.execute(f"DROP SCHEMA {schema} CASCADE")
        finally:
            await pool.close()
    assert outcomes[0] == outcomes[1]
    journal, rejected, _, _ = outcomes[0]
    decided = {o for (o,) in journal} | {o for o, _ in rejected}
    assert decided >= set(range(len(log) - len(repeats)))
