"""`ledger rebuild --yes` as a real process: from a dropped projection, resumed after a
kill, and under a running pipeline."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from services.common.settings import Settings
from tests.integration.pipeline_harness import (
    BALANCES,
    USAGE,
    execute,
    grant_accounts,
    ledger,
    pipeline,
    publish_usage,
    rows,
    wait_journal,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

EVENTS = 3_000
ACCOUNTS = 15
WORK = "SELECT coalesce(sum(next_offset), 0) FROM ledger_rebuild.applied_offsets"


async def project(settings: Settings, tmp_path: Path) -> None:
    with pipeline(settings, tmp_path):
        await grant_accounts(settings, ACCOUNTS)
        await publish_usage(settings, EVENTS, accounts=ACCOUNTS)
        await wait_journal(settings, EVENTS + ACCOUNTS)


async def test_without_yes_it_refuses(isolated_settings: Settings) -> None:
    result = await ledger(isolated_settings, "rebuild")
    assert result.code == 2
    assert "--yes" in result.err


async def test_a_dropped_projection_is_rebuilt_account_by_account(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    s = isolated_settings
    await project(s, tmp_path)
    balances, usage = await rows(s, BALANCES), await rows(s, USAGE)
    assert len(balances) == ACCOUNTS

    await execute(s, "DROP SCHEMA ledger CASCADE")
    result = await ledger(s, "rebuild", "--yes")
    assert result.code == 0, result.out + result.err
    assert f"entries replayed {EVENTS + ACCOUNTS:,}" in result.out
    assert await rows(s, BALANCES) == balances
    assert await rows(s, USAGE) == usage
    assert not await rows(s, "SELECT 1 FROM pg_namespace WHERE nspname = 'ledger_rebuild'")
    assert (await ledger(s, "audit")).code == 0


async def test_an_interrupted_rebuild_resumes_and_gives_the_same_result(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    s = isolated_settings
    await project(s, tmp_path)
    balances = await rows(s, BALANCES)
    await execute(s, "DROP SCHEMA ledger CASCADE")

    killed = await ledger(
        s, "rebuild", "--yes", LEDGER_FAULT="rebuild:after_first_batch", LEDGER_REPLAY_BATCH="500"
    )
    assert killed.code == -9
    ((done,),) = await rows(s, WORK)
    assert 0 < done < EVENTS  # the first batch is in the work schema, the rest is not
    assert await rows(s, BALANCES) == []  # the live projection was recreated, still empty

    result = await ledger(s, "rebuild", "--yes", LEDGER_REPLAY_BATCH="500")
    assert result.code == 0, result.out + result.err
    assert f"resumed after {done:,} offsets" in result.out
    assert await rows(s, BALANCES) == balances
    assert (await ledger(s, "audit")).code == 0


async def test_a_rebuild_under_a_running_pipeline_loses_nothing(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    s = isolated_settings
    with pipeline(s, tmp_path):
        await grant_accounts(s, ACCOUNTS)
        await publish_usage(s, EVENTS, accounts=ACCOUNTS)
        await wait_journal(s, 1_000)
        traffic = asyncio.create_task(
            publish_usage(s, EVENTS, accounts=ACCOUNTS, seed=8, rate=1_500)
        )
        try:
            result = await ledger(s, "rebuild", "--yes")
        finally:
            await traffic
        assert result.code == 0, result.out + result.err
        await wait_journal(s, 2 * EVENTS + ACCOUNTS)
        audit = await ledger(s, "audit", "--json")
    assert audit.code == 0, audit.out
    assert audit.document()["entries_read"] == 2 * EVENTS + ACCOUNTS
