"""Holds under faults, with real processes: the API killed between a hold's commit and its
publish, the projector killed right after a settlement's commit, a rebuild while holds are
active. No decision is lost, none is applied twice."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from services.common.settings import Settings
from tests.e2e.faults import READ, audit
from tests.e2e.holding import (
    GATEWAY,
    TOKENS,
    balance,
    counters,
    fund,
    hold_events,
    holds_pipeline,
    new_account,
    place,
    publish,
    usage,
    wait_balance,
    wait_hold_events,
)
from tests.namespaces import namespace
from tests.processes import LEDGER, service_env

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture
async def settings_of_own(
    kafka_bootstrap: str, postgres_server_url: str
) -> AsyncIterator[Settings]:
    async with namespace(kafka_bootstrap, postgres_server_url, "holdfault") as ns:
        yield ns


async def test_a_hold_committed_before_a_crash_reaches_holds_v1_after_the_restart(
    settings_of_own: Settings, tmp_path: Path
) -> None:
    settings = settings_of_own
    pipeline, [url] = holds_pipeline(settings, tmp_path, LEDGER_FAULT="api:after_hold_commit")
    port = url.rsplit(":", 1)[1]
    healthy = pipeline.add("healthy", "api", "--port", port, LEDGER_API_TOKENS=TOKENS)
    try:
        await pipeline.start("projector", "api0")
        account = new_account("crash")
        async with httpx.AsyncClient(base_url=url, timeout=30.0) as client:
            await fund(client, account, 500)
            with pytest.raises(httpx.TransportError):
                await place(client, account, {"credits": 200}, key="req-1")
        await asyncio.to_thread(pipeline.processes["api0"].proc.wait, 30)  # type: ignore[union-attr]
        conn = await asyncpg.connect(settings.database_url)
        try:
            pending = await conn.fetch("SELECT type, hold_id FROM holds.outbox")
        finally:
            await conn.close()
        assert [r["type"] for r in pending] == ["hold.placed"]
        assert await hold_events(settings, account) == []
        await asyncio.to_thread(healthy.start, 90.0)
        [event] = await wait_hold_events(settings, account, 1)
        assert event.type == "hold.placed" and event.hold_id == pending[0]["hold_id"]
        async with httpx.AsyncClient(base_url=url, timeout=30.0) as client:
            again = await place(client, account, {"credits": 200}, key="req-1")
            assert again.status_code == 200 and again.json()["hold_id"] == event.hold_id
            assert (await balance(client, account))["available"] == 300
    finally:
        pipeline.close()


async def test_a_projector_killed_after_settling_settles_once(
    settings_of_own: Settings, tmp_path: Path
) -> None:
    settings = settings_of_own
    pipeline, [url] = holds_pipeline(settings, tmp_path, pricing=True)
    crashing = pipeline.add("crashing", "projector", LEDGER_FAULT="projector:after_db_commit")
    try:
        await pipeline.start("pricing", "projector", "api0")
        account = new_account("settle")
        async with httpx.AsyncClient(base_url=url, timeout=30.0) as client:
            await fund(client, account, 10_000)
            placed = await place(client, account, {"credits": 3000})
            hold_id = placed.json()["hold_id"]
            pipeline.processes["projector"].stop()
            await asyncio.to_thread(crashing.start, 90.0)
            await publish(settings, usage(account, hold_id, 1000, 500))
            assert await asyncio.to_thread(crashing.proc.wait, 60) == -9  # type: ignore[union-attr]
            await pipeline.restart("projector")
            shown = await wait_balance(client, account, "spent", 1500)
            await asyncio.sleep(1.0)  # room for a second (wrong) settlement to show
            shown = await balance(client, account)
        assert (shown["held"], shown["available"], shown["entries"]) == (0, 8500, 2)
        found = await counters(settings.database_url)
        assert found["hold_settled"] == 1 and found["duplicates"] >= 1
        conn = await asyncpg.connect(settings.database_url)
        try:
            settled = await conn.fetchval("SELECT settled FROM holds.account_settlements")
            status = await conn.fetchval("SELECT status FROM holds.holds")
        finally:
            await conn.close()
        assert (settled, status) == (3000, "settled")
    finally:
        pipeline.close()


async def test_a_rebuild_keeps_active_and_settled_holds(
    settings_of_own: Settings, tmp_path: Path
) -> None:
    settings = settings_of_own
    pipeline, [url] = holds_pipeline(settings, tmp_path, pricing=True)
    try:
        await pipeline.start()
        account = new_account("rebuild")
        async with httpx.AsyncClient(base_url=url, timeout=30.0) as client:
            await fund(client, account, 10_000)
            ids = [
                (await place(client, account, {"credits": 1000})).json()["hold_id"] for _ in "abc"
            ]
            await publish(settings, usage(account, ids[0], 300, 200))
            await wait_balance(client, account, "held", 2000)
            before = await balance(client, account)
            listed = await client.get(f"/v1/accounts/{account}/holds", headers=READ)
            rebuilt = await asyncio.to_thread(
                subprocess.run, [*LEDGER, "rebuild", "--yes"], env=service_env(settings),
                capture_output=True, text=True, timeout=240,
            )  # fmt: skip
            assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
            after = await balance(client, account)
            assert after == before and after["available"] == 10_000 - 500 - 2000
            again = await client.get(f"/v1/accounts/{account}/holds", headers=READ)
            assert again.json() == listed.json()
            # The holds still decide: the remaining credits, and no more.
            assert (await place(client, account, {"credits": 7500})).status_code == 201
            refused = await place(client, account, {"credits": 1})
            assert refused.status_code == 402
            released = await client.delete(
                f"/v1/accounts/{account}/holds/{ids[1]}", headers=GATEWAY
            )
            assert released.status_code == 200
        code, report = await asyncio.to_thread(audit, settings)
        assert code == 0, report
    finally:
        pipeline.close()
