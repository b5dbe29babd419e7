"""Duplicates: a usage event sent three times gives one debit; the same event_id with other
token counts is never applied and shows up as a conflict (API /metrics and `ledger audit`);
100 concurrent top-ups with one Idempotency-Key give one entry."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from services.common.settings import Settings
from services.common.topics import Topics
from services.pricing.debits import debit_entry_id
from tests.e2e.faults import (
    ADMIN,
    Expected,
    Pipeline,
    Report,
    audit,
    ledger_debits_on_log,
    publish_raw,
    read_topic,
    settle,
)
from tests.factories import usage_fields

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

CONCURRENT_POSTS = 100
CONFLICTS_GAUGE = re.compile(r'^ledger_projector_events\{counter="conflicts"\} (\S+)$', re.M)


async def conflicts_in_metrics(client: httpx.AsyncClient) -> float:
    """The projector's conflict count as the API exports it, once it shows one."""
    for _ in range(600):
        found = CONFLICTS_GAUGE.search((await client.get("/metrics")).text)
        if found and float(found.group(1)) > 0:
            return float(found.group(1))
        await asyncio.sleep(0.1)
    return 0.0


async def balance_with_grant(client: httpx.AsyncClient, account: str) -> dict[str, int]:
    """The account's balance once the projector has applied the top-up."""
    balance: dict[str, int] = {}
    for _ in range(600):
        answer = await client.get(f"/v1/accounts/{account}/balance", headers=ADMIN)
        balance = answer.json()
        if answer.status_code == 200 and balance["purchased"] > 0:
            break
        await asyncio.sleep(0.1)
    return balance


async def test_duplicates_settle_once_and_conflicts_are_never_applied(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    account = f"acct-dup-{uuid.uuid4().hex[:8]}"
    first = usage_fields(account_id=account, input_tokens=1000, output_tokens=200)
    same_id_other_tokens = {**first, "input_tokens": 2000, "output_tokens": 1}
    messages: list[tuple[bytes | None, bytes]] = [
        (account.encode(), json.dumps(first).encode()) for _ in range(3)
    ]
    messages.append((account.encode(), json.dumps(same_id_other_tokens).encode()))
    report = Report("duplicates", published=len(messages), faults=3 + CONCURRENT_POSTS - 1)
    pipeline = Pipeline.standard(isolated_settings, tmp_path)
    body = {"credits": 5000, "reason": "purchase", "reference": "order-dup"}
    headers = {**ADMIN, "Idempotency-Key": f"key-{uuid.uuid4()}"}
    try:
        await pipeline.start()
        await publish_raw(isolated_settings, messages)
        async with httpx.AsyncClient(base_url=pipeline.api_url, timeout=60.0) as client:
            answers = await asyncio.gather(
                *(
                    client.post(f"/v1/accounts/{account}/credits", json=body, headers=headers)
                    for _ in range(CONCURRENT_POSTS)
                )
            )
            expected = Expected(len(messages), frozenset({first["event_id"]}), 0)
            await settle(isolated_settings, expected, pipeline)
            gauge = await conflicts_in_metrics(client)
            balance = await balance_with_grant(client, account)
        conn = await asyncpg.connect(isolated_settings.database_url)
        try:
            journal = await conn.fetch(
                "SELECT kind, credits, billable_tokens FROM ledger.journal WHERE account_id = $1",
                account,
            )
            conflicts = await conn.fetch("SELECT entry_id FROM ledger.conflicts")
        finally:
            await conn.close()
        code, document = audit(isolated_settings)
        on_log = await ledger_debits_on_log(isolated_settings)
        grants_on_log = sum(
            json.loads(r.value)["type"] == "credits.granted"
            for r in await read_topic(
                isolated_settings, Topics.from_settings(isolated_settings).ledger
            )
        )
        exited = pipeline.exited()
    finally:
        unclean = pipeline.close()
    entry_ids = {a.json().get("entry_id") for a in answers}
    debits = [r for r in journal if r["kind"] == "debited"]
    grants = [r for r in journal if r["kind"] == "granted"]
    report.doubled = max(len(debits) - 1, 0) + max(len(grants) - 1, 0)
    report.lost = (len(debits) == 0) + (len(grants) == 0)
    report.notes.append(
        f"ledger.v1 holds {sum(on_log.values())} debit(s) and {grants_on_log} grant(s); "
        f"conflicts gauge {gauge:g}; audit exit {code} listing {len(document['conflicts'])} "
        "conflict(s)"
    )
    report.check()
    assert {a.status_code for a in answers} == {202}
    assert len(entry_ids) == 1
    assert [(r["credits"], r["billable_tokens"]) for r in debits] == [(-1200, 1200)]
    assert balance["balance"] == 5000 - 1200
    assert [r["entry_id"] for r in conflicts] == [debit_entry_id(account, first["event_id"])]
    assert gauge == 1
    assert code == 0, document
    assert [c["entry_id"] for c in document["conflicts"]] == [
        str(debit_entry_id(account, first["event_id"]))
    ]
    assert exited == {}, f"services exited on their own: {exited}\n{pipeline.logs()}"
    assert unclean == {}, f"SIGTERM did not stop cleanly: {unclean}"
