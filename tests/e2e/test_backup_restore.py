"""`ledger backup` / `ledger restore` end to end (docs/operations.md, Backups): traffic with
holds, API keys, alert settings and a keyed grant; a backup taken while the services run;
a hold placed and one released after it (only holds.v1 has those); the database dropped;
the runbook (`ledger restore`, `ledger rebuild --yes`, `ledger audit`) into a new one of
the same name; then every piece of state is as before."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from services.api.holds.catch_up import RESTORED_DIGEST
from services.common.db import ADMIN_DATABASE, _database_name, _with_database
from services.common.settings import Settings
from tests.e2e.faults import ADMIN, READ, audit
from tests.e2e.holding import (
    GATEWAY,
    WAIT_S,
    balance,
    holds_pipeline,
    new_account,
    place,
    publish,
    usage,
    wait_balance,
    wait_hold_events,
)
from tests.processes import LEDGER, service_env

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

WEBHOOK = "http://127.0.0.1:9/alerts"  # never called: no webhooks service runs here


def ledger(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*LEDGER, *args],
        env=service_env(settings),
        capture_output=True,
        text=True,
        timeout=180,
    )
    print(f"$ ledger {' '.join(args)} -> {done.returncode}\n{done.stdout}{done.stderr}")
    return done


async def grant(client: httpx.AsyncClient, account: str, key: str) -> httpx.Response:
    return await client.post(
        f"/v1/accounts/{account}/credits",
        json={"credits": 1000, "reason": "purchase", "reference": "backup-test"},
        headers={**ADMIN, "Idempotency-Key": key},
    )


async def hold_statuses(client: httpx.AsyncClient, account: str) -> list[dict[str, Any]]:
    answer = await client.get(f"/v1/accounts/{account}/holds", headers=READ)
    assert answer.status_code == 200, answer.text
    holds: list[dict[str, Any]] = answer.json()["holds"]
    return holds


async def wait_settled(client: httpx.AsyncClient, account: str, hold_id: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if any(
            h["hold_id"] == hold_id and h["status"] == "settled"
            for h in await hold_statuses(client, account)
        ):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"hold {hold_id} never settled")


async def database_state(url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        return {
            "subscriptions": [
                dict(r) for r in await conn.fetch("SELECT * FROM alerts.subscriptions ORDER BY 1")
            ],
            "keys": [dict(r) for r in await conn.fetch("SELECT * FROM ledger.api_keys ORDER BY 1")],
            "holds": [
                dict(r) for r in await conn.fetch("SELECT * FROM holds.holds ORDER BY hold_id")
            ],
        }
    finally:
        await conn.close()


def without_digests(state: dict[str, Any]) -> dict[str, Any]:
    """The state but the holds' request digests, which holds.v1 does not carry."""
    holds = [{**h, "request_digest": None} for h in state["holds"]]
    return {**state, "holds": holds}


async def drop_database(url: str) -> None:
    admin = await asyncpg.connect(_with_database(url, ADMIN_DATABASE))
    try:
        await admin.execute(f'DROP DATABASE "{_database_name(url)}" WITH (FORCE)')
    finally:
        await admin.close()


async def test_restore_then_rebuild_gives_back_the_ledger_the_log_cannot(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    settings = isolated_settings
    env = {"LEDGER_WEBHOOK_ALLOW_PRIVATE": "true"}
    (tmp_path / "before").mkdir()
    pipeline, urls = holds_pipeline(settings, tmp_path / "before", pricing=True, **env)
    account, key = new_account("backup"), uuid.uuid4().hex
    try:
        await pipeline.start()
        async with httpx.AsyncClient(base_url=urls[0], timeout=30) as client:
            granted = await grant(client, account, key)
            assert granted.status_code == 202, granted.text
            entry_id = granted.json()["entry_id"]
            await wait_balance(client, account, "purchased", 1000)
            ids = []
            for credits in (300, 200, 100):  # settled by usage, released, left active
                answer = await place(client, account, {"credits": credits, "ttl_seconds": 3600})
                assert answer.status_code == 201, answer.text
                ids.append(answer.json()["hold_id"])
            await publish(settings, usage(account, ids[0], 20, 10))
            await wait_settled(client, account, ids[0])
            released = await client.delete(
                f"/v1/accounts/{account}/holds/{ids[1]}", headers=GATEWAY
            )
            assert released.status_code == 200, released.text
            made = await client.post(
                "/v1/keys", json={"scope": "read", "name": "bk"}, headers=ADMIN
            )
            assert made.status_code == 201, made.text
            secret = made.json()["secret"]
            alerts = {"thresholds": [100, 500], "webhook_url": WEBHOOK}
            saved = await client.put(f"/v1/accounts/{account}/alerts", json=alerts, headers=ADMIN)
            assert saved.status_code == 200, saved.text
            # Online: the services keep running while the snapshot is copied.
            backup_dir = tmp_path / "backup"
            done = ledger(settings, "backup", str(backup_dir))
            assert done.returncode == 0, done.stderr
            assert "holds.holds: 3 rows" in done.stdout
            # Decided after the backup's instant: only holds.v1 has them.
            released = await client.delete(
                f"/v1/accounts/{account}/holds/{ids[2]}", headers=GATEWAY
            )
            assert released.status_code == 200, released.text
            late = await place(client, account, {"credits": 50, "ttl_seconds": 3600})
            assert late.status_code == 201, late.text
            await wait_hold_events(settings, account, 6)  # 4 placed, 2 released
            before = {
                "balance": await balance(client, account),
                "holds": await hold_statuses(client, account),
                "alerts": (await client.get(f"/v1/accounts/{account}/alerts", headers=READ)).json(),
            }
            assert before["balance"]["held"] == 50, before  # the late hold
            assert before["balance"]["available"] > 0, before
            state = await database_state(settings.database_url)
    finally:
        pipeline.close()

    await drop_database(settings.database_url)
    for command in (["restore", str(backup_dir)], ["rebuild", "--yes"]):
        done = ledger(settings, *command)
        assert done.returncode == 0, done.stderr
        assert command[0] == "rebuild" or "1 holds placed and 1 released" in done.stdout
    code, report = audit(settings)
    assert code == 0, report
    again = ledger(settings, "restore", str(backup_dir))
    assert again.returncode == 2 and "already holds rows" in again.stderr

    (tmp_path / "after").mkdir()
    pipeline, urls = holds_pipeline(settings, tmp_path / "after", pricing=True, **env)
    try:
        await pipeline.start()
        async with httpx.AsyncClient(base_url=urls[0], timeout=30) as client:
            restored = await database_state(settings.database_url)
            caught_up = {h["hold_id"]: h for h in restored["holds"]}[late.json()["hold_id"]]
            assert caught_up["request_digest"] == RESTORED_DIGEST
            assert without_digests(restored) == without_digests(state)
            assert await balance(client, account) == before["balance"]
            assert await hold_statuses(client, account) == before["holds"]
            shown = await client.get(f"/v1/accounts/{account}/alerts", headers=READ)
            assert shown.json() == before["alerts"]
            by_key = {"Authorization": f"Bearer {secret}"}
            read = await client.get(f"/v1/accounts/{account}/balance", headers=by_key)
            assert read.status_code == 200, read.text
            resent = await grant(client, account, key)
            assert resent.status_code == 202, resent.text
            assert resent.json()["entry_id"] == entry_id
            # The late hold still holds: one credit more than available is refused.
            available = before["balance"]["available"]
            too_much = await place(client, account, {"credits": available + 1})
            assert too_much.status_code == 402, too_much.text
            fits = await place(client, account, {"credits": available})
            assert fits.status_code == 201, fits.text
            assert (await balance(client, account))["purchased"] == 1000
    finally:
        pipeline.close()
