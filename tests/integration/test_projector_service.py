"""`ledger serve projector` as a real process, fed through the real ledger.v1 topic."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from services.common.settings import Settings
from tests.factories import adjusted, debited, granted
from tests.integration.projector_harness import SAFETY_TIMEOUT, publish, wait_applied
from tests.processes import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture
async def db(isolated_settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(
        isolated_settings.database_url, server_settings={"search_path": "ledger"}
    )
    yield conn
    await conn.close()


@pytest.fixture
def projector(isolated_settings: Settings, tmp_path: Path) -> Iterator[ServiceProcess]:
    process = ServiceProcess("projector", isolated_settings, tmp_path)
    yield process
    process.kill()


async def wait_counted(db: asyncpg.Connection, deliveries: int) -> None:
    """Waits until the counters account for `deliveries` messages, redeliveries included."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SAFETY_TIMEOUT
    while await db.fetchval("SELECT coalesce(sum(value), 0) FROM projector_counters") < deliveries:
        assert loop.time() < deadline, f"projector did not count {deliveries} deliveries"
        await asyncio.sleep(0.2)


async def rows(db: asyncpg.Connection, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await db.fetch(sql)]


BALANCES = "SELECT account_id, balance, purchased, adjusted, spent, entries, status FROM balances"
COUNTERS = "SELECT name, value FROM projector_counters"


async def test_applies_several_accounts_rejects_garbage_and_stops_cleanly(
    isolated_settings: Settings, db: asyncpg.Connection, projector: ServiceProcess
) -> None:
    projector.start()
    await publish(
        isolated_settings,
        granted("acct-1", 5000), debited("acct-1", 1200), debited("acct-1", 30, "mimo-v2-omni"),
        granted("acct-2", 100), adjusted("acct-2", 25), debited("acct-2", 400),
        debited("acct-3", 0, "mimo-v2-tts"), ("acct-4", b'{"type": "credits.granted"'),
    )  # fmt: skip
    await wait_applied(db, 8)

    assert sorted(await rows(db, BALANCES + " ORDER BY 1")) == [
        ("acct-1", 3770, 5000, 0, 1230, 3, "active"),
        ("acct-2", -275, 100, 25, 400, 3, "exhausted"),
        ("acct-3", 0, 0, 0, 0, 1, "exhausted"),
    ]
    usage = "SELECT account_id, model, requests, tokens, credits FROM usage_daily ORDER BY 1, 2"
    assert await rows(db, usage) == [
        ("acct-1", "mimo-v2-omni", 1, 15, 30),
        ("acct-1", "mimo-v2-pro", 1, 600, 1200),
        ("acct-2", "mimo-v2-pro", 1, 200, 400),
        ("acct-3", "mimo-v2-tts", 1, 0, 0),
    ]
    assert await db.fetchval("SELECT count(*) FROM journal") == 7
    assert await db.fetchval("SELECT count(*) FROM rejected_entries") == 1
    assert dict(await rows(db, COUNTERS)) == {
        "applied": 7, "duplicates": 0, "conflicts": 0, "rejected": 1,
    }  # fmt: skip
    assert projector.stop() == 0
    assert "projector stopped cleanly" in projector.log()
    assert projector.log().count("rejected: partition") == 1


async def test_a_burst_of_50000_debits_for_one_account_is_fully_applied(
    isolated_settings: Settings, db: asyncpg.Connection, projector: ServiceProcess
) -> None:
    burst = [debited("acct-burst", 3) for _ in range(50_000)]
    await publish(isolated_settings, granted("acct-burst", 1_000_000), *burst)
    projector.start()
    await wait_applied(db, 50_001)

    assert await rows(db, BALANCES) == [
        ("acct-burst", 850_000, 1_000_000, 0, 150_000, 50_001, "active")
    ]
    assert await rows(db, "SELECT requests, credits FROM usage_daily") == [(50_000, 150_000)]
    assert await db.fetchval("SELECT count(*) FROM journal") == 50_001


async def test_overdraft_then_top_up_flips_the_status_both_ways(
    isolated_settings: Settings, db: asyncpg.Connection, projector: ServiceProcess
) -> None:
    projector.start()
    await publish(isolated_settings, granted("acct-o", 100), debited("acct-o", 150))
    await wait_applied(db, 2)
    assert await rows(db, BALANCES) == [("acct-o", -50, 100, 0, 150, 2, "exhausted")]

    await publish(isolated_settings, granted("acct-o", 100))
    await wait_applied(db, 3)
    assert await rows(db, BALANCES) == [("acct-o", 50, 200, 0, 150, 3, "active")]


async def test_redelivered_entry_is_a_duplicate_and_a_conflict_is_stored_not_applied(
    isolated_settings: Settings, db: asyncpg.Connection, projector: ServiceProcess
) -> None:
    entry = debited("acct-d", 40)
    repriced = entry.model_copy(update={"priced_at": entry.priced_at.replace(year=2027)})
    conflicting = entry.model_copy(update={"credits": 4000})
    projector.start()
    await publish(isolated_settings, granted("acct-d", 100), entry)
    await wait_applied(db, 2)
    await publish(isolated_settings, entry, repriced, conflicting, conflicting)
    await wait_applied(db, 6)

    assert await rows(db, BALANCES) == [("acct-d", 60, 100, 0, 40, 2, "active")]
    assert dict(await rows(db, COUNTERS)) == {
        "applied": 2, "duplicates": 3, "conflicts": 1, "rejected": 0,
    }  # fmt: skip
    conflict = await db.fetchrow("SELECT * FROM conflicts")
    assert conflict["entry_id"] == entry.entry_id
    assert '"credits": 4000' in conflict["conflicting_content"]
    assert '"credits": -40' in conflict["applied_content"]
    assert projector.log().count(f"conflict: entry {entry.entry_id}") == 1


async def test_kill_after_db_commit_then_restart_counts_redeliveries_as_duplicates(
    isolated_settings: Settings, db: asyncpg.Connection, tmp_path: Path
) -> None:
    faulty = ServiceProcess(
        "projector", isolated_settings, tmp_path, LEDGER_FAULT="projector:after_db_commit"
    ).start()
    try:
        # More than one batch, so the first run applies only part of the log.
        entries = [granted(f"acct-{n % 7}", 1000 + n) for n in range(25_000)]
        await publish(isolated_settings, *entries)
        assert faulty.proc is not None
        assert await asyncio.to_thread(faulty.proc.wait, SAFETY_TIMEOUT) == -signal.SIGKILL
    finally:
        faulty.kill()
    journal = "SELECT seq, entry_id, account_id, credits FROM journal ORDER BY seq"
    first_run = await rows(db, journal)
    first_balances = await rows(db, BALANCES + " ORDER BY 1")
    assert 0 < len(first_run) == dict(await rows(db, COUNTERS))["applied"]

    restarted = ServiceProcess("projector", isolated_settings, tmp_path).start()
    try:
        await wait_counted(db, len(entries) + len(first_run))
        counters = dict(await rows(db, COUNTERS))
        assert (counters["applied"], counters["duplicates"]) == (len(entries), len(first_run))
        assert (await rows(db, journal))[: len(first_run)] == first_run
        expected = {f"acct-{k}": sum(e.credits for e in entries[k::7]) for k in range(7)}
        assert {r[0]: r[1] for r in await rows(db, BALANCES)} == expected
        for account, balance, *_ in first_balances:
            assert balance <= expected[account]
    finally:
        restarted.kill()


async def test_a_connection_lost_mid_batch_retries_the_same_batch(
    isolated_settings: Settings, db: asyncpg.Connection, projector: ServiceProcess
) -> None:
    projector.start()
    await publish(isolated_settings, granted("acct-r", 10))
    await wait_applied(db, 1)
    blocker = await asyncpg.connect(
        isolated_settings.database_url, server_settings={"search_path": "ledger"}
    )
    try:
        # Holding the account's row makes the projector's batch wait inside its transaction,
        # where the test cuts its connection.
        async with blocker.transaction():
            await blocker.execute("SELECT 1 FROM balances WHERE account_id = 'acct-r' FOR UPDATE")
            await publish(isolated_settings, *[debited("acct-r", 1) for _ in range(500)])
            pid = await wait_for_lock_waiter(db)
            assert await db.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await blocker.close()
    await wait_applied(db, 501)

    assert await rows(db, BALANCES) == [("acct-r", -490, 10, 0, 500, 501, "exhausted")]
    assert await db.fetchval("SELECT count(*) FROM journal") == 501
    assert "PostgreSQL unreachable" in projector.log()


async def wait_for_lock_waiter(db: asyncpg.Connection) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SAFETY_TIMEOUT
    waiting = """
    SELECT pid FROM pg_stat_activity
    WHERE datname = current_database() AND wait_event_type = 'Lock' LIMIT 1
    """
    while (pid := await db.fetchval(waiting)) is None:
        assert loop.time() < deadline, "the projector never waited for the locked row"
        await asyncio.sleep(0.05)
    return int(pid)


async def test_sigterm_under_load_commits_what_it_applied_and_loses_nothing(
    isolated_settings: Settings, db: asyncpg.Connection, projector: ServiceProcess
) -> None:
    entries = [granted(f"acct-{n % 5}", 1 + n) for n in range(30_000)]
    await publish(isolated_settings, *entries)
    projector.start()
    await wait_applied(db, 1)
    assert projector.stop() == 0
    assert "projector stopped cleanly" in projector.log()

    projector.start()
    await wait_applied(db, len(entries))
    counters = dict(await rows(db, COUNTERS))
    # A clean stop commits every batch it applied, so nothing comes back as a duplicate.
    assert (counters["applied"], counters["duplicates"]) == (len(entries), 0)
    expected = {f"acct-{k}": sum(e.credits for e in entries[k::5]) for k in range(5)}
    assert {r[0]: r[1] for r in await rows(db, BALANCES)} == expected
