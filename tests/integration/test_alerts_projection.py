"""Crossings in the projector's transaction (services/alerts/projection.py) on the real
PostgreSQL: the outbox holds the same alerts whether a run of entries is applied in one
batch, in many, or twice; the relay publishes them once each on alerts.v1."""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import pytest

from schemas.events import LedgerEntry, parse_alert
from services.alerts import relay, store
from services.alerts.crossings import Span, crossings, may_cross
from services.alerts.projection import CANDIDATES, candidate_parameters, movements
from services.common import kafka
from services.common.settings import Settings
from services.common.topics import Topics
from services.projector import open_projection
from services.projector.apply import apply as apply_batch
from services.projector.apply import prepare_records
from tests.factories import adjusted, debited, granted
from tests.integration.projector_harness import Log

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TOPIC = "test-ledger.v1"
OUTBOX = "SELECT alert_id, account_id, type, event FROM alert_outbox ORDER BY seq"


@pytest.fixture
async def pools(isolated_settings: Settings) -> AsyncIterator[list[asyncpg.Pool]]:
    """Three projection schemas of one database: they share the thresholds (schema alerts)."""
    url = isolated_settings.database_url
    opened = [await open_projection(url, name) for name in ("ledger", "cut_a", "cut_b")]
    yield opened
    for pool in opened:
        await pool.close()


def traffic(seed: int) -> list[LedgerEntry]:
    """Top-ups and spending of three accounts that pass their thresholds and 0 many times."""
    rng = random.Random(seed)
    entries: list[LedgerEntry] = []
    for _ in range(150):
        account = rng.choice(["t1", "t2", "plain"])
        roll = rng.random()
        if roll < 0.15:
            entries.append(granted(account, rng.randint(1, 3000)))
        elif roll < 0.2:
            entries.append(adjusted(account, rng.randint(-500, 500) or 1))
        else:
            entries.append(debited(account, rng.randint(0, 400)))
    for account in ("t1", "t2", "plain"):  # every kind of alert, whatever the seed
        entries += [granted(account, 10_000), debited(account, 20_000), granted(account, 30_000)]
    return entries


async def apply_in_batches(
    pool: asyncpg.Pool, entries: Sequence[LedgerEntry], cuts: list[int]
) -> None:
    log = Log()
    records = log.records(*entries)
    edges = [0, *sorted(cuts), len(records)]
    async with pool.acquire() as conn:
        for lo, hi in itertools.pairwise(edges):
            if hi > lo:
                await apply_batch(conn, TOPIC, prepare_records(records[lo:hi]))


async def outbox(pool: asyncpg.Pool) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await pool.fetch(OUTBOX)]


@pytest.mark.parametrize("seed", [1, 2])
async def test_one_batch_or_many_or_twice_gives_the_same_alerts(
    pools: list[asyncpg.Pool], seed: int
) -> None:
    whole, cut_a, cut_b = pools
    async with whole.acquire() as conn:
        await store.put_subscription(conn, "t1", [2000, 500, 0], None)
        await store.put_subscription(conn, "t2", [100], None)
    entries = traffic(seed)
    rng = random.Random(seed)
    await apply_in_batches(whole, entries, [])
    await apply_in_batches(cut_a, entries, list(range(len(entries))))
    await apply_in_batches(cut_b, entries, rng.sample(range(len(entries)), 12))
    # A redelivery of everything (new offsets, same entries) adds nothing.
    await apply_in_batches(cut_b, entries, rng.sample(range(len(entries)), 5))

    expected = crossings(
        {"t1": None, "t2": None, "plain": None},
        {"t1": [2000, 500, 0], "t2": [100]},
        movements(entries),
    )
    stored = await outbox(whole)
    assert [r[0] for r in stored] == [c.alert_id for c in expected]
    assert {r[2] for r in stored} == {"balance.low", "balance.exhausted", "balance.recovered"}
    assert await outbox(cut_a) == stored
    assert await outbox(cut_b) == stored
    for alert_id, account, kind, event in stored:
        parsed = parse_alert(event)
        assert (parsed.alert_id, parsed.account_id, parsed.type) == (alert_id, account, kind)
    counted = await whole.fetchval("SELECT value FROM alert_counters WHERE name = 'raised'")
    assert counted == len(stored)
    assert await cut_b.fetchval("SELECT value FROM alert_counters WHERE name = 'raised'") == len(
        stored
    )


async def test_the_sql_filter_keeps_exactly_the_accounts_may_cross_keeps(
    pools: list[asyncpg.Pool],
) -> None:
    """CANDIDATES is crossings.may_cross for a whole batch at once: same verdicts."""
    whole = pools[0]
    cases = [
        (balance, Span(falls, rises, n), watched)
        for balance in (None, -50, 0, 1, 50, 10**18)
        for falls, rises, n in ((0, 0, 1), (0, 10, 1), (49, 0, 3), (50, 0, 2), (60, 70, 2),
                                (0, 50, 1), (0, 51, 2), (10**19, 10**19, 2))
        for watched in (False, True)
    ]  # fmt: skip
    names = [f"f{i}" for i in range(len(cases))]
    async with whole.acquire() as conn:
        for name, (balance, _, watched) in zip(names, cases, strict=True):
            if balance is not None:
                await conn.execute(
                    "INSERT INTO balances (account_id, balance, entries, status, updated_at) "
                    "VALUES ($1, $2, 1, 'active', now())",
                    name, balance,
                )  # fmt: skip
            if watched:
                await store.put_subscription(conn, name, [5], None)
        spans = {name: span for name, (_, span, _) in zip(names, cases, strict=True)}
        rows = await conn.fetch(CANDIDATES, *candidate_parameters(spans))
    kept = {r["account_id"] for r in rows}
    expected = {n for n, (b, span, w) in zip(names, cases, strict=True) if may_cross(b, span, w)}
    assert kept == expected
    assert 0 < len(expected) < len(cases)


async def test_the_relay_publishes_each_alert_once_keyed_by_account(
    pools: list[asyncpg.Pool], isolated_settings: Settings
) -> None:
    whole = pools[0]
    await apply_in_batches(whole, [granted("r", 100), debited("r", 100), granted("r", 1)], [])
    producer = kafka.producer(isolated_settings)
    await producer.start()
    topic = Topics.from_settings(isolated_settings).alerts
    try:
        assert await relay.publish_once(whole, producer, topic) == 2
        assert await relay.publish_once(whole, producer, topic) == 0
    finally:
        await producer.stop()
    assert await whole.fetchval("SELECT count(*) FROM alert_outbox WHERE published_at IS NULL") == 0
    consumer = kafka.consumer(isolated_settings, topic, group_id=None)
    await consumer.start()
    try:
        fetched = await consumer.getmany(timeout_ms=5000)
        records = [m for ms in fetched.values() for m in ms]
        while len(records) < 2:
            more = await consumer.getmany(timeout_ms=5000)
            assert more, "alerts not on alerts.v1"
            records += [m for ms in more.values() for m in ms]
    finally:
        await consumer.stop()
    assert [parse_alert(r.value).type for r in records] == [
        "balance.exhausted",
        "balance.recovered",
    ]
    assert {r.key for r in records} == {b"r"}


async def test_a_rebuild_carries_only_the_alerts_of_entries_live_never_applied(
    pools: list[asyncpg.Pool],
) -> None:
    live, work, _ = pools
    early = [granted("k", 100), debited("k", 100)]  # exhausted: live raised it already
    late = [granted("k", 50), debited("k", 60)]  # recovered, exhausted: only the rebuild saw
    await apply_in_batches(live, early, [])
    await apply_in_batches(work, early + late, [1])
    async with live.acquire() as conn:
        await store.carry_alerts(conn, "ledger", "cut_a")
        await store.carry_alerts(conn, "ledger", "cut_a")  # twice: nothing more
    assert await outbox(live) == await outbox(work)
    assert [r[2] for r in await outbox(live)] == [
        "balance.exhausted", "balance.recovered", "balance.exhausted",
    ]  # fmt: skip
    with pytest.raises(ValueError):
        async with live.acquire() as conn:
            await store.carry_alerts(conn, "ledger", 'x"; DROP TABLE journal; --')
