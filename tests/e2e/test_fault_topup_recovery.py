"""Top-ups are never lost: the API is killed between claiming a top-up's Idempotency-Key
and publishing it (fault point `api:after_claim`); the restarted API publishes the claimed
entry by itself, within seconds, exactly once, without the client retrying."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from services.api.grants import FAULT_AFTER_CLAIM, grant_entry_id
from services.common.settings import Settings
from services.common.topics import Topics
from tests.e2e.faults import ADMIN, API_TOKENS, read_topic
from tests.processes import ServiceProcess, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

PUBLISHED_WITHIN_S = 15.0  # a sweep at start, then every 5 s; generous for a loaded machine
TOP_UP = {"credits": 5000, "reason": "purchase", "reference": "order-lost"}


def api(settings: Settings, log_dir: Path, port: int, **env: str) -> ServiceProcess:
    return ServiceProcess(
        "api", settings, log_dir, "--port", str(port), LEDGER_API_TOKENS=API_TOKENS, **env
    )


async def claim_state(settings: Settings, account: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return await conn.fetch(
            "SELECT entry_id, published_at FROM ledger.idempotency_keys WHERE account_id = $1",
            account,
        )
    finally:
        await conn.close()


async def entries_on_log(settings: Settings, account: str) -> list[bytes]:
    records = await read_topic(settings, Topics.from_settings(settings).ledger)
    return [r.value for r in records if r.key == account.encode() and r.value is not None]


async def test_a_claim_the_api_died_on_is_published_after_its_restart(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    settings, account, port = isolated_settings, "acct-recovered", free_port()
    doomed = api(settings, tmp_path, port, LEDGER_FAULT=FAULT_AFTER_CLAIM).start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            with pytest.raises(httpx.TransportError):
                await client.post(
                    f"/v1/accounts/{account}/credits",
                    json=TOP_UP,
                    headers={**ADMIN, "Idempotency-Key": "lost-1"},
                )
        assert doomed.proc is not None and doomed.proc.wait(timeout=30) == -9
        [claim] = await claim_state(settings, account)
        assert claim["published_at"] is None
        assert await entries_on_log(settings, account) == []
    finally:
        doomed.kill()

    restarted = api(settings, tmp_path, port).start()
    try:
        ready = time.monotonic()
        while not (published := await entries_on_log(settings, account)):
            assert time.monotonic() - ready < PUBLISHED_WITHIN_S, restarted.log()[-3000:]
            await asyncio.sleep(0.2)
        # The sweep marks the claim once Kafka acknowledged it, a moment after the entry
        # shows on the log: marked, no later sweep sends it again.
        while (await claim_state(settings, account))[0]["published_at"] is None:
            assert time.monotonic() - ready < PUBLISHED_WITHIN_S, restarted.log()[-3000:]
            await asyncio.sleep(0.2)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            retried = await client.post(
                f"/v1/accounts/{account}/credits",
                json=TOP_UP,
                headers={**ADMIN, "Idempotency-Key": "lost-1"},
            )
        assert retried.status_code == 202
        assert retried.json()["entry_id"] == str(grant_entry_id(account, "lost-1"))
        assert await entries_on_log(settings, account) == published  # still exactly one
        assert len(published) == 1
        assert "recovery: published 1 claimed but unpublished entries" in restarted.log()
    finally:
        restarted.stop()
